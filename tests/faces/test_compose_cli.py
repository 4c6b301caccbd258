"""``fluxkit compose``: the subcommand's parser and handler, and the example script."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

import pytest
from PIL import Image

import fluxkit
from fluxkit.cli import compose


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fluxkit")
    compose.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["compose", *argv])


@pytest.fixture
def files(tmp_path, astronaut, grace) -> tuple[str, str, Path]:
    astronaut.save(tmp_path / "target.png")
    grace.save(tmp_path / "headshot.jpg")
    return str(tmp_path / "target.png"), str(tmp_path / "headshot.jpg"), tmp_path / "out.png"


def test_overlay_only(files, capsys) -> None:
    target, headshot, out = files
    args = _parse(
        target, headshot, "--fit", "height", "--scale", "1.1", "--detector", "haar", "-o", str(out)
    )
    assert args.handler is compose.run
    assert args.handler(args) == 0
    assert Image.open(out).size == (512, 512)
    assert "fitted by height x 1.1" in capsys.readouterr().out


def test_style_with_the_fake_backend(files, capsys) -> None:
    target, headshot, out = files
    args = _parse(
        target,
        headshot,
        "--style",
        "van-gogh",
        "--backend",
        "fake",
        "--seed",
        "1",
        "--detector",
        "haar",
        "-o",
        str(out),
    )
    assert compose.run(args) == 0
    assert "restyled on fake" in capsys.readouterr().out
    assert out.is_file()


def test_backend_defaults_to_the_environment(files, monkeypatch, capsys) -> None:
    target, headshot, out = files
    monkeypatch.setenv("FLUXKIT_BACKEND", "fake")
    args = _parse(
        target, headshot, "--restyle", "an oil painting", "--detector", "haar", "-o", str(out)
    )
    assert args.backend is None
    assert compose.run(args) == 0
    assert "restyled on fake" in capsys.readouterr().out


def test_no_face_is_exit_2_with_one_line(tmp_path, files, capsys) -> None:
    _, headshot, out = files
    Image.new("RGB", (300, 300), "white").save(tmp_path / "blank.png")
    assert compose.run(_parse(str(tmp_path / "blank.png"), headshot, "-o", str(out))) == 2
    err = capsys.readouterr().err.strip()
    assert "no face found in the target image" in err and "\n" not in err
    assert not out.exists()


def test_provider_failure_without_fallback_is_exit_1(
    files, monkeypatch, capsys, broken_backend
) -> None:
    target, headshot, out = files
    monkeypatch.setattr(fluxkit, "Generator", lambda name: _sync(broken_backend()))
    argv = (target, headshot, "--restyle", "x", "--backend", "broken", "--detector", "haar")
    assert compose.run(_parse(*argv, "--no-fallback", "-o", str(out))) == 1
    assert "GPU fell over" in capsys.readouterr().err
    assert compose.run(_parse(*argv, "-o", str(out))) == 0  # fallback: overlay saved, warned
    assert "warning: restyle on broken failed" in capsys.readouterr().err
    assert out.is_file()


def _sync(backend: object) -> fluxkit.Generator:
    from fluxkit._generator import Generator

    return Generator(backend)  # type: ignore[arg-type]


def test_styles_and_fits_are_choices(files) -> None:
    target, headshot, out = files
    with pytest.raises(SystemExit):
        _parse(target, headshot, "--style", "cubism", "-o", str(out))
    with pytest.raises(SystemExit):
        _parse(target, headshot, "--restyle", "x", "--style", "neon", "-o", str(out))


def test_example_script_runs(tmp_path, monkeypatch) -> None:
    script = Path(__file__).parents[2] / "examples" / "compose_faces.py"
    monkeypatch.setattr(sys, "argv", [str(script), str(tmp_path)])
    runpy.run_path(str(script), run_name="__main__")
    assert (tmp_path / "overlay.png").is_file() and (tmp_path / "restyled.png").is_file()


def test_existing_output_is_refused_before_any_work(files, monkeypatch, capsys) -> None:
    target, headshot, out = files
    out.write_bytes(b"my earlier composite")

    def no_restyle(*args: object, **kwargs: object) -> None:
        raise AssertionError("restyled (and paid) although the output could not be written")

    monkeypatch.setattr("fluxkit.faces.overlay_then_restyle", no_restyle)
    argv = (target, headshot, "--style", "neon", "--backend", "fake", "-o", str(out))
    assert compose.run(_parse(*argv)) == 2
    assert "already exists; use --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"my earlier composite"
    assert (
        compose.run(
            _parse(target, headshot, "--detector", "haar", "-o", str(out.with_suffix(".gif")))
        )
        == 2
    )
    assert not out.with_suffix(".gif").exists()


def test_overwrite_replaces_atomically(files, monkeypatch, capsys) -> None:
    target, headshot, out = files
    out.write_bytes(b"my earlier composite")
    argv = (target, headshot, "--detector", "haar", "-o", str(out), "--overwrite")

    def torn(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        fp.write(b"\x89PNG half")  # type: ignore[attr-defined]
        raise OSError("killed mid-encode")

    with monkeypatch.context() as patch:
        patch.setattr(Image.Image, "save", torn)
        with pytest.raises(OSError, match="killed mid-encode"):
            compose.run(_parse(*argv))
    assert out.read_bytes() == b"my earlier composite"
    assert sorted(p.name for p in out.parent.iterdir()) == ["headshot.jpg", "out.png", "target.png"]
    capsys.readouterr()
    assert compose.run(_parse(*argv)) == 0
    assert Image.open(out).size == (512, 512)
    assert sorted(p.name for p in out.parent.iterdir()) == ["headshot.jpg", "out.png", "target.png"]


_KILLED_COMPOSE = """
import os, sys, time
real_fsync = os.fsync

def slow_fsync(fd):
    print("writing", flush=True)  # the temp file holds the new image, not yet renamed
    time.sleep(60)

os.fsync = slow_fsync
from fluxkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_compose_killed_while_writing_leaves_no_torn_output(files) -> None:
    import signal
    import subprocess

    target, headshot, out = files
    out.write_bytes(b"my earlier composite")
    argv = ["compose", target, headshot, "--detector", "haar", "-o", str(out), "--overwrite"]
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_COMPOSE, *argv], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "writing"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert out.read_bytes() == b"my earlier composite"
