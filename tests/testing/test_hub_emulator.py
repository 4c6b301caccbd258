"""The real huggingface_hub client against HubEmulator on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

pytest.importorskip("huggingface_hub")

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from fluxkit.testing.hub import HubEmulator, hub_client_settings


@pytest.fixture
def hub() -> HubEmulator:
    return HubEmulator()


@pytest.fixture
def api(hub: HubEmulator) -> Iterator[HfApi]:
    with hub.serve() as endpoint, hub_client_settings():
        yield HfApi(endpoint=endpoint, token="hf_test")


def test_create_repo_private_and_409_on_existing(hub: HubEmulator, api: HfApi) -> None:
    url = api.create_repo("me/r", private=True)
    assert url.endswith("/me/r") and hub.repos["me/r"].private
    assert api.create_repo("me/r", exist_ok=True).endswith("/me/r")
    with pytest.raises(HfHubHTTPError) as caught:
        api.create_repo("me/r")
    assert caught.value.response.status_code == 409
    api.create_repo("me/pub", private=False)
    assert hub.repos["me/pub"].private is False


def test_regular_and_lfs_uploads_then_listing(hub: HubEmulator, api: HfApi) -> None:
    api.create_repo("me/r", private=True)
    weights = bytes(range(256)) * 100
    api.create_commit(
        "me/r",
        [CommitOperationAdd("w.safetensors", weights), CommitOperationAdd("notes.txt", b"hello")],
        commit_message="m",
    )
    assert hub.repos["me/r"].files["w.safetensors"].lfs
    assert not hub.repos["me/r"].files["notes.txt"].lfs
    assert sorted(api.list_repo_files("me/r")) == ["notes.txt", "w.safetensors"]
    info = api.model_info("me/r", files_metadata=True)
    assert info.private and {s.rfilename: s.size for s in info.siblings or []} == {
        "notes.txt": 5,
        "w.safetensors": len(weights),
    }
    # Re-uploading the same content is skipped (no empty commit, no second PUT).
    api.create_commit("me/r", [CommitOperationAdd("w.safetensors", weights)], commit_message="m")
    assert len(hub.requests(path=r"^/_lfs/", method="PUT")) == 1


def test_401_on_a_bad_token_and_private_repos_hidden(hub: HubEmulator, api: HfApi) -> None:
    with pytest.raises(HfHubHTTPError) as caught:
        HfApi(endpoint=api.endpoint, token="wrong").create_repo("me/x")
    assert caught.value.response.status_code == 401
    api.create_repo("me/private", private=True)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=api.endpoint, token=False).model_info("me/private")


def test_commit_referencing_a_missing_lfs_object_is_refused_whole(
    hub: HubEmulator, api: HfApi
) -> None:
    api.create_repo("me/r")
    body = (
        b'{"key":"header","value":{"summary":"x"}}\n'
        b'{"key":"file","value":{"path":"a.txt","content":"aGk=","encoding":"base64"}}\n'
        b'{"key":"lfsFile","value":{"path":"w.bin","algo":"sha256","oid":"' + b"0" * 64 + b'"}}\n'
    )
    response = httpx.post(
        f"{api.endpoint}/api/models/me/r/commit/main",
        content=body,
        headers={"authorization": "Bearer hf_test"},
    )
    assert response.status_code == 422
    assert hub.repos["me/r"].files == {}


def test_resolve_honours_range_and_redirects_lfs_to_the_cdn(hub: HubEmulator, api: HfApi) -> None:
    api.create_repo("me/r")
    api.create_commit(
        "me/r", [CommitOperationAdd("w.safetensors", b"0123456789" * 10)], commit_message="m"
    )
    response = httpx.get(
        f"{api.endpoint}/me/r/resolve/main/w.safetensors",
        headers={"range": "bytes=5-9"},
        follow_redirects=True,
    )
    assert response.status_code == 206 and response.content == b"56789"
    assert response.headers["content-range"] == "bytes 5-9/100"
    assert response.history and response.history[0].status_code == 302
