"""The CLI never loses a file, never spends money on a doomed command, never prints a traceback."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

import fluxkit
from fluxkit.cli import main
from fluxkit.cli.generate import parse_lora, parse_size

_CREDENTIAL_VARS = (
    "FAL_KEY",
    "FAL_API_KEY",
    "TOGETHER_API_KEY",
    "REPLICATE_API_TOKEN",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "RUNPOD_API_KEY",
    "FLUXKIT_BACKEND",
)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def no_generation(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) every generate call: these commands must fail before paying."""
    from fluxkit._generator import Generator

    calls: list[str] = []

    def generate(self: object, prompt: str, **kwargs: object) -> object:
        calls.append(prompt)
        raise AssertionError("generate() was called: money would have been spent")

    monkeypatch.setattr(Generator, "generate", generate)
    return calls


def _png(path: Path, colour: tuple[int, int, int] = (9, 9, 9)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), colour).save(path)
    return path


# --- lora and size parsing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "source", "scale"),
    [
        ("hf://me/style/s.safetensors", "hf://me/style/s.safetensors", 1.0),
        ("hf://me/style/s.safetensors:0.7", "hf://me/style/s.safetensors", 0.7),
        ("https://host:8080/s.safetensors", "https://host:8080/s.safetensors", 1.0),
        ("https://host:8080/s.safetensors:-1.5", "https://host:8080/s.safetensors", -1.5),
        ("https://host/s.safetensors:.5", "https://host/s.safetensors", 0.5),
        ("hf://me/style/s.safetensors:4", "hf://me/style/s.safetensors", 4.0),
    ],
)
def test_lora_scale_is_only_a_trailing_number(text: str, source: str, scale: float) -> None:
    lora = parse_lora(text)
    assert (lora.source, lora.scale) == (source, scale)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("hf://me/style/s.safetensors:99", "out of range"),
        ("hf://me/style/s.safetensors:-4.01", "out of range"),
        ("hf://me/style/s.safetensors:1e9", "out of range"),
        ("hf://me/style/s.safetensors:nan", "not a number"),
        ("hf://me/style/s.safetensors:inf", "not a number"),
        ("hf://me/style/s.safetensors:", "empty scale"),
        ("missing.safetensors:abc", "not a number"),
        (":0.5", "no source"),
        ("", "empty"),
    ],
)
def test_bad_lora_scales_are_typed_errors(text: str, reason: str) -> None:
    with pytest.raises(fluxkit.InvalidRequestError, match=reason) as caught:
        parse_lora(text)
    assert caught.value.field == "--lora"


def test_existing_local_file_with_a_colon_is_a_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "style:v2.safetensors").write_bytes(b"x")
    assert parse_lora("style:v2.safetensors").scale == 1.0


def test_lora_scale_99_is_exit_2_not_a_file_named_99(
    capsys: pytest.CaptureFixture[str], no_generation: list[str], tmp_path: Path
) -> None:
    argv = ["generate", "x", "--backend", "fake", "--lora", "a.safetensors:99", "-o", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--lora" in err and "out of range" in err and no_generation == []


def test_size_parsing() -> None:
    assert parse_size("768x1024") == (768, 1024)
    assert parse_size("square_hd") == "square_hd"
    with pytest.raises(Exception, match="WIDTHxHEIGHT"):
        parse_size("10x")


# --- outputs checked before any money is spent -------------------------------------------------


def test_existing_output_file_is_refused_before_generating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_generation: list[str]
) -> None:
    existing = tmp_path / "fox.png"
    existing.write_bytes(b"yesterday's render")
    assert main(["generate", "a fox", "--backend", "fake", "-o", str(existing)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {existing} already exists; use --overwrite to replace it\n"
    assert existing.read_bytes() == b"yesterday's render" and no_generation == []


@pytest.mark.parametrize(
    "make_output",
    [
        lambda tmp: str(_write(tmp / "notes.txt")),  # an existing non-image file as folder
        lambda tmp: str(_write(tmp / "file") / "sub"),  # a folder under a file
        lambda tmp: str(tmp / "two.png"),  # a file name with -n 2
    ],
)
def test_unusable_outputs_fail_before_generating(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_generation: list[str],
    make_output: Callable[[Path], str],
) -> None:
    argv = ["generate", "a fox", "--backend", "fake", "-n", "2", "-o", make_output(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --output=") and err.count("\n") == 1
    assert no_generation == []


def _write(path: Path) -> Path:
    path.write_text("mine")
    return path


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="POSIX permissions, non-root")
def test_unwritable_output_folder_fails_before_generating(
    tmp_path: Path, no_generation: list[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        assert main(["generate", "x", "--backend", "fake", "-o", str(locked / "out")]) == 2
    finally:
        locked.chmod(0o700)
    assert no_generation == []


def test_fixed_seed_runs_keep_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["generate", "a fox", "--backend", "fake", "--size", "256x256", "--seed", "7"]
    for _ in range(3):
        assert main([*argv, "--quiet", "-o", str(tmp_path)]) == 0
    printed = [Path(line).name for line in capsys.readouterr().out.split()]
    assert printed == ["fluxkit-00-7.png", "fluxkit-00-7-1.png", "fluxkit-00-7-2.png"]
    assert len(list(tmp_path.iterdir())) == 3


def test_output_file_and_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "new" / "fox.jpg"
    argv = ["generate", "a fox", "--backend", "fake", "--size", "256x256", "--quiet"]
    assert main([*argv, "--seed", "1", "-o", str(target)]) == 0
    assert fluxkit.read_record(target)["seed"] == 1  # type: ignore[index]
    assert main([*argv, "--seed", "2", "-o", str(target)]) == 2
    assert main([*argv, "--seed", "2", "-o", str(target), "--overwrite"]) == 0
    assert fluxkit.read_record(target)["seed"] == 2  # type: ignore[index]
    assert capsys.readouterr().out.split() == [str(target), str(target)]


def test_a_file_that_appears_while_generating_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fluxkit._generator import Generator

    target = tmp_path / "fox.png"
    original = Generator.generate

    def racing(self: Generator, *args: object, **kwargs: object) -> object:
        result = original(self, *args, **kwargs)  # type: ignore[arg-type]
        target.write_bytes(b"written by someone else meanwhile")
        return result

    monkeypatch.setattr(Generator, "generate", racing)
    argv = ["generate", "a fox", "--backend", "fake", "--size", "256x256", "--quiet"]
    assert main([*argv, "-o", str(target)]) == 0
    assert target.read_bytes() == b"written by someone else meanwhile"
    assert (tmp_path / "fox-1.png").is_file()  # the paid image is not lost either
    assert "appeared while generating" in capsys.readouterr().err


# --- Ctrl-C ------------------------------------------------------------------------------------


def test_keyboard_interrupt_is_one_line_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fluxkit.cli import doctor

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(doctor, "run", interrupted)
    assert main(["doctor"]) == 130
    captured = capsys.readouterr()
    assert captured.err == "interrupted\n" and "Traceback" not in captured.out


def test_sigint_in_a_real_process_exits_130_without_traceback() -> None:
    script = textwrap.dedent(
        """
        import sys, time
        import fluxkit.cli.doctor as doctor
        from fluxkit.cli import main

        def slow(args):
            print("started", flush=True)
            time.sleep(60)
            return 0

        doctor.run = slow
        sys.exit(main(["doctor"]))
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "started"
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 130
    assert err == "interrupted\n"


# --- garbage never gives a traceback ----------------------------------------------------------


def _garbage(tmp: Path) -> list[list[str]]:
    """Invocations a user could type by mistake, across every subcommand."""
    text = _write(tmp / "notes.txt")
    empty = tmp / "empty.bin"
    empty.write_bytes(b"")
    image = _png(tmp / "img.png")
    blank = _png(tmp / "blank.png", (255, 255, 255))
    existing = _png(tmp / "existing.png")
    photos = tmp / "photos"
    for n in range(5):
        _png(photos / f"p{n}.png", (n * 40, 10, 10))
    empty_dir = tmp / "empty_dir"
    empty_dir.mkdir()
    bad_zip = tmp / "bad.zip"
    bad_zip.write_bytes(b"PK\x03\x04 this is not a zip")
    archive = tmp / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in range(5):
            buffer = io.BytesIO()
            from PIL import Image

            Image.new("RGB", (32, 32), (n * 40, 0, 0)).save(buffer, format="PNG")
            zf.writestr(f"p{n}.png", buffer.getvalue())
    out = str(tmp / "out")
    g = ["generate", "a fox", "--backend", "fake", "-o", out]
    pack = ["dataset", "pack", str(photos), "--target", "fal", "--trigger", "tok"]
    comp = ["compose", str(image), str(image)]
    return [
        # top level
        [],
        ["--nope"],
        ["nope"],
        ["--debug"],
        ["dataset"],
        ["dataset", "nope"],
        ["lora"],
        ["lora", "nope"],
        # generate
        ["generate"],
        [*g, "--steps", "abc"],
        [*g, "--steps", "-1"],
        [*g, "--steps", "0"],
        [*g, "--steps", "100000"],
        [*g, "--guidance", "abc"],
        [*g, "--guidance", "nan"],
        [*g, "--guidance", "-5"],
        [*g, "--seed", "abc"],
        [*g, "--seed", "-1"],
        [*g, "--seed", "9" * 30],
        [*g, "-n", "0"],
        [*g, "-n", "-3"],
        [*g, "-n", "100000"],
        [*g, "-n", "abc"],
        [*g, "--size", "abc!"],
        [*g, "--size", "0x0"],
        [*g, "--size", "10x"],
        [*g, "--size", "x10"],
        [*g, "--size", "99999x99999"],
        [*g, "--size", "no_such_preset"],
        [*g, "--size", "-5x5"],
        [*g, "--lora", "x.safetensors:99"],
        [*g, "--lora", "x:abc"],
        [*g, "--lora", ":0.5"],
        [*g, "--lora", ""],
        [*g, "--lora", "hf://a/b/c.safetensors:nan"],
        [*g, "--lora", "hf://a/b/c.safetensors:"],
        [*g, "--lora", "https://h/x.safetensors:1e9"],
        [*g, "--lora", "hf://"],
        [*g, "--lora", "ftp://host/x.safetensors"],
        [*g, "--image", str(tmp / "missing.png")],
        [*g, "--image", str(text)],
        [*g, "--image", str(image), "--strength", "2"],
        [*g, "--strength", "abc"],
        [*g, "--timeout", "-1"],
        [*g, "--timeout", "abc"],
        [*g, "--format", "gif"],
        ["generate", "a fox", "--backend", "nope", "-o", out],
        ["generate", "a fox", "--backend", "", "-o", out],
        ["generate", "a fox", "--backend", "fal", "-o", out],
        ["generate", "a fox", "--backend", "together", "-o", out],
        ["generate", "", "--backend", "fake", "-o", out],
        ["generate", "a fox", "--backend", "fake", "-o", str(existing)],
        ["generate", "a fox", "--backend", "fake", "-o", str(text)],
        ["generate", "a fox", "--backend", "fake", "-n", "2", "-o", str(tmp / "two.png")],
        ["generate", "a fox", "--backend", "fake", "-o", str(text / "sub")],
        # doctor
        ["doctor", "extra"],
        ["doctor", "--nope"],
        # dataset pack
        ["dataset", "pack"],
        [*pack],
        ["dataset", "pack", str(tmp / "missing"), "--target", "fal", "--trigger", "t", "-o", out],
        [*pack, "--target", "civitai", "-o", out],
        ["dataset", "pack", str(photos), "--target", "fal", "--trigger", "", "-o", out],
        [*pack, "--size", "abc", "-o", out],
        [*pack, "--size", "10", "-o", out],
        [*pack, "--size", "99999", "-o", out],
        [*pack, "--caption", "", "-o", out],
        [*pack, "-o", str(photos / "inside.zip")],
        [*pack, "-o", str(existing)],
        [*pack, "-o", str(photos)],
        ["dataset", "pack", str(archive), "--target", "fal", "--trigger", "t", "-o", str(archive)],
        ["dataset", "pack", str(text), "--target", "fal", "--trigger", "t", "-o", out],
        ["dataset", "pack", str(empty_dir), "--target", "fal", "--trigger", "t", "-o", out],
        ["dataset", "pack", str(bad_zip), "--target", "fal", "--trigger", "t", "-o", out],
        ["dataset", "pack", str(photos), "--target", "kohya", "--trigger", "t", "-o", str(text)],
        # lora
        ["lora", "inspect"],
        ["lora", "inspect", str(tmp / "missing.safetensors")],
        ["lora", "inspect", str(text)],
        ["lora", "inspect", str(empty)],
        ["lora", "inspect", str(tmp)],
        ["lora", "inspect", "hf://"],
        ["lora", "push"],
        ["lora", "push", str(tmp / "missing.safetensors"), "me/x", "--trigger", "t"],
        ["lora", "push", str(text), "not a repo id", "--trigger", "t"],
        ["lora", "status"],
        # compose
        ["compose"],
        [*comp],
        ["compose", str(tmp / "missing.png"), str(image), "-o", str(tmp / "c.png")],
        ["compose", str(text), str(text), "-o", str(tmp / "c.png")],
        [*comp, "-o", str(tmp / "c.txt")],
        [*comp, "-o", str(existing)],
        [*comp, "-o", str(tmp)],
        [*comp, "-o", str(tmp / "c.png"), "--scale", "abc"],
        [*comp, "-o", str(tmp / "c.png"), "--fit", "nope"],
        [*comp, "-o", str(tmp / "c.png"), "--blend", "nope"],
        [*comp, "-o", str(tmp / "c.png"), "--face-index", "abc"],
        [*comp, "-o", str(tmp / "c.png"), "--style", "cubism"],
        [*comp, "-o", str(tmp / "c.png"), "--style", "neon", "--restyle", "x"],
        ["compose", str(blank), str(blank), "-o", str(tmp / "c.png"), "--detector", "nope"],
        ["compose", str(blank), str(blank), "-o", str(tmp / "c.png")],
    ]


def test_garbage_invocations_never_print_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    invocations = _garbage(tmp_path)
    assert len(invocations) >= 79
    existing = (tmp_path / "existing.png").read_bytes()
    failures = []
    for argv in invocations:
        code = main(argv)
        captured = capsys.readouterr()
        output = captured.out + captured.err
        if code not in (1, 2) or "Traceback" in output:
            failures.append((argv, code, output[-300:]))
    assert failures == []
    assert (tmp_path / "existing.png").read_bytes() == existing
    assert not (tmp_path / "c.png").exists()
