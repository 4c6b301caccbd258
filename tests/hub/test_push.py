from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from fluxkit import (
    AuthenticationError,
    InvalidRequestError,
    LoRA,
    MissingCredentialsError,
    MissingDependencyError,
    ProviderUnavailableError,
)
from fluxkit.hub import push_lora
from fluxkit.lora import PickleFormatError
from fluxkit.testing.hub import HubEmulator
from tests.lora import builders


def test_push_creates_a_private_repo_with_weights_samples_and_card(
    hub: HubEmulator, endpoint: str, lora_file: Path, sample: Path
) -> None:
    lora = push_lora(
        lora_file,
        "me/tok-lora",
        trigger_word="ohwx",
        samples=[sample],
        token="hf_test",
        endpoint=endpoint,
    )
    assert isinstance(lora, LoRA)
    assert lora.source == "hf://me/tok-lora/tok.safetensors" and lora.repo_id == "me/tok-lora"
    repo = hub.repos["me/tok-lora"]
    assert repo.private is True and len(repo.commits) == 1
    assert set(repo.files) == {"tok.safetensors", "images/sample_0.jpg", "README.md"}
    assert repo.files["tok.safetensors"].data == lora_file.read_bytes()
    assert repo.files["tok.safetensors"].lfs  # went through preupload -> LFS batch -> PUT
    image = Image.open(io.BytesIO(repo.files["images/sample_0.jpg"].data))
    assert not dict(image.getexif())  # the sample's GPS tags were stripped
    front = yaml.safe_load(repo.files["README.md"].data.decode().split("---\n")[1])
    assert front["base_model"] == "black-forest-labs/FLUX.1-dev"  # from the file's metadata
    assert front["instance_prompt"] == "ohwx"
    assert front["widget"][0]["output"]["url"] == "images/sample_0.jpg"
    assert hub.requests(path=r"\.git/info/lfs/objects/batch$")
    assert hub.requests(path=r"^/_lfs/", method="PUT")


def test_public_push_and_schnell_base_model(
    hub: HubEmulator, endpoint: str, tmp_path: Path
) -> None:
    file = builders.diffusers_lora(tmp_path / "pytorch_lora_weights.safetensors")
    push_lora(
        file,
        "me/fast",
        trigger_word="tok",
        base_model="flux-schnell",
        private=False,
        token="hf_test",
        endpoint=endpoint,
    )
    repo = hub.repos["me/fast"]
    assert repo.private is False
    assert b"license: apache-2.0" in repo.files["README.md"].data


def test_sdxl_file_is_refused_before_anything_is_created(
    hub: HubEmulator, endpoint: str, tmp_path: Path
) -> None:
    file = builders.sdxl_lora(tmp_path / "sdxl.safetensors")
    with pytest.raises(InvalidRequestError, match="SDXL"):
        push_lora(file, "me/sdxl", trigger_word="tok", token="hf_test", endpoint=endpoint)
    assert hub.log == [] and hub.repos == {}


def test_pickle_and_conflicting_base_model_are_refused_offline(
    hub: HubEmulator, endpoint: str, tmp_path: Path, lora_file: Path
) -> None:
    pickle = tmp_path / "lora.bin"
    pickle.write_bytes(b"\x80\x02.")
    with pytest.raises(PickleFormatError):
        push_lora(pickle, "me/x", trigger_word="tok", token="hf_test", endpoint=endpoint)
    with pytest.raises(InvalidRequestError, match="base_model"):
        push_lora(
            lora_file,
            "me/x",
            trigger_word="tok",
            base_model="flux-schnell",
            token="hf_test",
            endpoint=endpoint,
        )
    with pytest.raises(InvalidRequestError, match="repo_id"):
        push_lora(lora_file, "not a repo", trigger_word="tok", token="hf_test", endpoint=endpoint)
    with pytest.raises(MissingCredentialsError, match="HF_TOKEN"):
        push_lora(lora_file, "me/x", trigger_word="tok", endpoint=endpoint)
    assert hub.log == []


def test_bad_token_is_an_authentication_error_without_the_token(
    hub: HubEmulator, endpoint: str, lora_file: Path
) -> None:
    with pytest.raises(AuthenticationError) as caught:
        push_lora(lora_file, "me/x", trigger_word="tok", token="hf_very_secret", endpoint=endpoint)
    error = caught.value
    assert error.status_code == 401 and error.backend == "hub"
    assert "Invalid credentials" in (error.provider_message or "")
    for text in (str(error), repr(error), repr(error.body), str(error.__cause__)):
        assert "hf_very_secret" not in text
    assert error.__cause__ is None and error.__suppress_context__


def test_existing_repo_409_is_reused(hub: HubEmulator, endpoint: str, lora_file: Path) -> None:
    hub.add_repo("me/again", {"README.md": b"old"}, private=True)
    push_lora(lora_file, "me/again", trigger_word="tok", token="hf_test", endpoint=endpoint)
    assert hub.requests(path=r"^/api/repos/create$")  # answered 409, accepted as exist_ok
    assert "tok.safetensors" in hub.repos["me/again"].files


def test_existing_public_repo_is_not_silently_used_for_a_private_push(
    hub: HubEmulator, endpoint: str, lora_file: Path
) -> None:
    hub.add_repo("me/open", private=False)
    with pytest.raises(InvalidRequestError, match="is public"):
        push_lora(lora_file, "me/open", trigger_word="tok", token="hf_test", endpoint=endpoint)
    assert hub.repos["me/open"].files == {}


def test_other_weights_in_the_repo_need_replace(
    hub: HubEmulator, endpoint: str, lora_file: Path
) -> None:
    hub.add_repo("me/old", {"old.safetensors": b"x"}, private=True)
    with pytest.raises(InvalidRequestError, match="old.safetensors"):
        push_lora(lora_file, "me/old", trigger_word="tok", token="hf_test", endpoint=endpoint)
    push_lora(
        lora_file, "me/old", trigger_word="tok", token="hf_test", endpoint=endpoint, replace=True
    )
    assert [f for f in hub.repos["me/old"].files if f.endswith(".safetensors")] == [
        "tok.safetensors"
    ]


def test_lfs_upload_failing_once_is_retried(
    hub: HubEmulator, endpoint: str, lora_file: Path
) -> None:
    hub.script.fail_next(500, path=r"^/_lfs/", method="PUT")
    push_lora(lora_file, "me/flaky", trigger_word="tok", token="hf_test", endpoint=endpoint)
    assert len(hub.requests(path=r"^/_lfs/", method="PUT")) == 2
    assert "tok.safetensors" in hub.repos["me/flaky"].files


def test_interrupted_upload_commits_nothing_and_resumes(
    hub: HubEmulator, endpoint: str, lora_file: Path, sample: Path
) -> None:
    hub.script.fail_next(403, path=r"^/_lfs/", method="PUT", body={"error": "connection lost"})
    with pytest.raises(ProviderUnavailableError, match="Nothing was committed") as caught:
        push_lora(
            lora_file,
            "me/cut",
            trigger_word="tok",
            samples=[sample],
            token="hf_test",
            endpoint=endpoint,
        )
    assert "run the push again" in str(caught.value)
    repo = hub.repos["me/cut"]
    assert repo.files == {} and repo.commits == []  # nothing half-committed
    first_puts = len(hub.requests(path=r"^/_lfs/", method="PUT"))
    push_lora(
        lora_file,
        "me/cut",
        trigger_word="tok",
        samples=[sample],
        token="hf_test",
        endpoint=endpoint,
    )
    assert set(repo.files) == {"tok.safetensors", "images/sample_0.jpg", "README.md"}
    puts = hub.requests(path=r"^/_lfs/", method="PUT")
    # Two LFS objects, one failed PUT: whatever arrived before the failure was not sent again.
    assert first_puts >= 1 and len(puts) == 3
    assert len(repo.commits) == 1


def test_missing_huggingface_hub_names_the_extra(
    lora_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(MissingDependencyError, match=r"fluxkit\[hub\]"):
        push_lora(lora_file, "me/x", trigger_word="tok", token="hf_test")
