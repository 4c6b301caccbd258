"""Inspecting ``hf://`` references: header only, through HTTP Range requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluxkit import AuthenticationError, InvalidRequestError, ProviderRejectedError
from fluxkit.lora import inspect_lora
from fluxkit.testing.hub import HubEmulator
from tests.lora import builders


@pytest.fixture
def hub(tmp_path: Path) -> HubEmulator:
    emulator = HubEmulator()
    kohya = builders.kohya_lora(tmp_path / "k.safetensors").read_bytes()
    emulator.add_repo("me/public-lora", {"tok.safetensors": kohya, "README.md": b"# hi"})
    emulator.add_repo("me/secret", {"tok.safetensors": kohya}, private=True)
    emulator.add_repo("me/two", {"a.safetensors": kohya, "b.safetensors": kohya})
    for repo in emulator.repos.values():
        for item in repo.files.values():
            if item.lfs:
                emulator.lfs_objects[item.oid] = item.data
    return emulator


def test_hf_reference_reads_the_header_with_range_requests(hub: HubEmulator) -> None:
    info = inspect_lora(
        "hf://me/public-lora/tok.safetensors", transport=hub.transport(), endpoint=hub.base_url
    )
    assert info.layout == "kohya" and info.base_model == "flux-dev" and info.ranks == (8,)
    assert info.source == "hf://me/public-lora/tok.safetensors"
    size = len(hub.repos["me/public-lora"].files["tok.safetensors"].data)
    assert info.file_size == size
    cdn = hub.requests(path=r"^/_cdn/")
    assert cdn and all((r.header("range") or "").startswith("bytes=") for r in cdn)
    assert info.alphas == (1.0,)  # the F32 alphas sit together: one more small range read


def test_repo_without_file_uses_its_only_safetensors(hub: HubEmulator) -> None:
    info = inspect_lora("hf://me/public-lora", transport=hub.transport(), endpoint=hub.base_url)
    assert info.source == "hf://me/public-lora/tok.safetensors"


def test_ambiguous_repo_asks_for_a_file(hub: HubEmulator) -> None:
    with pytest.raises(InvalidRequestError, match="a.safetensors, b.safetensors"):
        inspect_lora("hf://me/two", transport=hub.transport(), endpoint=hub.base_url)


def test_private_repo_needs_a_valid_token(hub: HubEmulator) -> None:
    with pytest.raises((AuthenticationError, ProviderRejectedError)):
        inspect_lora(
            "hf://me/secret/tok.safetensors", transport=hub.transport(), endpoint=hub.base_url
        )
    with pytest.raises(AuthenticationError) as caught:
        inspect_lora(
            "hf://me/secret/tok.safetensors",
            token="hf_wrong",
            transport=hub.transport(),
            endpoint=hub.base_url,
        )
    assert "hf_wrong" not in str(caught.value) and "hf_wrong" not in repr(caught.value)
    info = inspect_lora(
        "hf://me/secret/tok.safetensors",
        token="hf_test",
        transport=hub.transport(),
        endpoint=hub.base_url,
    )
    assert info.is_flux


def test_missing_file_is_a_provider_rejection(hub: HubEmulator) -> None:
    with pytest.raises(ProviderRejectedError, match="not found"):
        inspect_lora(
            "hf://me/public-lora/nope.safetensors", transport=hub.transport(), endpoint=hub.base_url
        )


def test_hf_token_comes_from_the_environment(
    hub: HubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    info = inspect_lora(
        "hf://me/secret/tok.safetensors", transport=hub.transport(), endpoint=hub.base_url
    )
    assert info.layout == "kohya"
