from __future__ import annotations

from pathlib import Path

import pytest

import fluxkit
from fluxkit.cli import main


def test_generate_writes_files_with_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "generate",
            "a red fox",
            "--backend",
            "fake",
            "--size",
            "256x256",
            "-n",
            "2",
            "--seed",
            "4",
            "--lora",
            "hf://me/style/s.safetensors:0.7",
            "-o",
            str(tmp_path),
        ]
    )
    assert code == 0
    paths = capsys.readouterr().out.split()
    assert [Path(p).name for p in paths] == ["fluxkit-00-4.png", "fluxkit-01-5.png"]
    record = fluxkit.read_record(paths[1])
    assert record is not None and record["seed"] == 5
    assert record["loras"] == [{"source": "hf://me/style/s.safetensors", "scale": 0.7}]


def test_bad_input_exits_2_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "x", "--backend", "fake", "--steps", "500"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: steps=500") and "\n" not in err and "Traceback" not in err


def test_unknown_backend_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "x", "--backend", "nope"]) == 2
    assert "available:" in capsys.readouterr().err


def test_missing_credentials_exit_2_naming_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    from fluxkit.backends import BACKEND_EXTRAS

    if "together" not in BACKEND_EXTRAS:  # pragma: no cover
        pytest.skip("no credentialed backend registered")
    pytest.importorskip("fluxkit.backends.together")
    assert main(["generate", "x", "--backend", "together"]) == 2
    assert "TOGETHER_API_KEY" in capsys.readouterr().err


def test_provider_failure_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import fluxkit._generator as generator_module
    from fluxkit.testing import FakeProviderEmulator

    emulator = FakeProviderEmulator()
    emulator.script.fail_jobs(1, "GPU fell over")
    real = generator_module.Generator

    def scripted(backend: str, **kwargs: object) -> object:
        return real(backend, transport=emulator.transport(), **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(generator_module, "Generator", scripted)
    assert main(["generate", "x", "--backend", "fake", "--size", "square", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "GPU fell over" in err and "Traceback" not in err


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "generate", "x", "--backend", "fake", "--steps", "0"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_doctor_lists_backends(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "fake" in out and "ready" in out


def test_lora_argument_parsing() -> None:
    from fluxkit.cli.generate import parse_lora, parse_size

    assert parse_lora("hf://a/b/c.safetensors:0.5").scale == 0.5
    assert parse_lora("hf://a/b/c.safetensors").scale == 1.0
    assert parse_lora("https://x.org/a.safetensors").source == "https://x.org/a.safetensors"
    assert parse_size("768x1024") == (768, 1024) and parse_size("square") == "square"
