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
