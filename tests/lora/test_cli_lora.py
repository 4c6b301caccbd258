from __future__ import annotations

import json
from pathlib import Path

import pytest

from fluxkit.cli import main


def test_lora_inspect_prints_summary(kohya_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lora", "inspect", str(kohya_file)]) == 0
    out = capsys.readouterr().out
    assert "layout:      kohya" in out and "FLUX.1 [dev]" in out


def test_lora_inspect_json(diffusers_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lora", "inspect", str(diffusers_file), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["layout"] == "diffusers" and data["ranks"] == [16]


def test_lora_inspect_refuses_pickle_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.ckpt"
    path.write_bytes(b"\x80\x04")
    assert main(["lora", "inspect", str(path)]) == 2
    assert "arbitrary code" in capsys.readouterr().err
