from __future__ import annotations

from pathlib import Path

import pytest

from fluxkit import AuthenticationError
from fluxkit.cli import main
from fluxkit.hub import lora_status, push_lora
from fluxkit.testing.hub import HubEmulator
from tests.lora import builders


def test_status_of_a_pushed_lora_is_ready(hub: HubEmulator, endpoint: str, lora_file: Path) -> None:
    push_lora(lora_file, "me/tok", trigger_word="tok", token="hf_test", endpoint=endpoint)
    status = lora_status("me/tok", token="hf_test", endpoint=endpoint)
    assert status.exists and status.private and status.ready
    assert status.safetensors == ("tok.safetensors",) and status.primary == "tok.safetensors"
    assert status.base_model == "black-forest-labs/FLUX.1-dev"
    assert status.info is not None and status.info.layout == "kohya"
    assert status.lora is not None and status.lora.source == "hf://me/tok/tok.safetensors"
    assert "private" in " ".join(status.notes)


def test_status_explains_why_not_ready(hub: HubEmulator, endpoint: str, tmp_path: Path) -> None:
    kohya = builders.kohya_lora(tmp_path / "k.safetensors").read_bytes()
    sdxl = builders.sdxl_lora(tmp_path / "s.safetensors").read_bytes()
    hub.add_repo("me/two", {"a.safetensors": kohya, "b.safetensors": kohya})
    hub.add_repo("me/sdxl", {"sdxl.safetensors": sdxl})
    hub.add_repo("me/empty", {"README.md": b"hi"})
    for repo in hub.repos.values():
        for item in repo.files.values():
            hub.lfs_objects[item.oid] = item.data
    two = lora_status("me/two", endpoint=endpoint)
    assert not two.ready and two.primary is None and "several" in two.problems[0]
    sdxl_status = lora_status("me/sdxl", endpoint=endpoint)
    assert not sdxl_status.ready and "SDXL" in sdxl_status.problems[0]
    assert lora_status("me/empty", endpoint=endpoint).problems == ("no .safetensors file",)
    missing = lora_status("me/missing", endpoint=endpoint)
    assert not missing.exists and not missing.ready


def test_private_repo_of_someone_else_looks_missing_and_bad_token_raises(
    hub: HubEmulator, endpoint: str
) -> None:
    hub.add_repo("other/secret", {"a.safetensors": b"x"}, private=True)
    assert not lora_status("other/secret", token="hf_test", endpoint=endpoint).exists
    with pytest.raises(AuthenticationError):
        lora_status("other/secret", token="hf_nope", endpoint=endpoint)


def test_cli_push_and_status(
    hub: HubEmulator,
    endpoint: str,
    lora_file: Path,
    sample: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    assert (
        main(
            ["lora", "push", str(lora_file), "me/cli", "--trigger", "tok", "--sample", str(sample)]
        )
        == 0
    )
    assert "hf://me/cli/tok.safetensors" in capsys.readouterr().out
    assert hub.repos["me/cli"].private
    assert main(["lora", "status", "me/cli"]) == 0
    assert "ready (private)" in capsys.readouterr().out
    assert main(["lora", "status", "me/nothing"]) == 2
    monkeypatch.setenv("HF_TOKEN", "hf_bad")
    assert main(["lora", "push", str(lora_file), "me/cli2", "--trigger", "tok"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: hub:") and "hf_bad" not in err
