"""An emulator of the Hugging Face Hub endpoints ``huggingface_hub.HfApi`` calls to publish a LoRA.

Run the real client against it on a loopback port::

    from huggingface_hub import HfApi
    from fluxkit.testing.hub import HubEmulator, hub_client_settings

    hub = HubEmulator()                                  # token "hf_test" belongs to user "me"
    with hub.serve() as endpoint, hub_client_settings():
        api = HfApi(endpoint=endpoint, token="hf_test")
        api.create_repo("me/tok-lora", private=True)
        api.upload_file(path_or_fileobj=b"...", path_in_repo="lora.safetensors",
                        repo_id="me/tok-lora")

Speaks: ``POST /api/repos/create`` (409 with ``url`` on an existing repo), ``GET
/api/models/{repo}`` (+ ``/revision/{rev}``), ``/tree/{rev}``, ``POST /api/validate-yaml``,
``/preupload/{rev}``, the git-LFS batch API (``/{repo}.git/info/lfs/objects/batch``, basic
transfer, upload + verify actions), ``POST /commit/{rev}`` (ndjson, applied atomically),
``GET|HEAD /{repo}/resolve/{rev}/{path}`` (LFS files redirect to a CDN route; ``Range`` honoured)
and ``GET /api/whoami-v2``. Unknown tokens get 401 "Invalid credentials in Authorization header",
as on the Hub. Objects already uploaded are answered without an upload action, so an interrupted
upload resumes where it stopped. Xet storage is not emulated: :func:`hub_client_settings` makes
the client use LFS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fluxkit.testing._emulator import Emulator, EmuRequest, EmuResponse, route

__all__ = ["HubEmulator", "HubFile", "HubRepo", "hub_client_settings"]

_REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
_LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".ckpt", ".gguf", ".zip", ".tar")
_REGULAR_LIMIT = 10 * 1024 * 1024


@contextmanager
def hub_client_settings() -> Iterator[None]:
    """Point ``huggingface_hub``'s global switches at an emulator, restoring them afterwards.

    Uploads go through git-LFS (which the emulator speaks) instead of Xet, and offline mode
    (``HF_HUB_OFFLINE``, read once at import) is lifted: the emulator is on loopback.

    Example:
        ```python
        with HubEmulator().serve() as endpoint, hub_client_settings():
            HfApi(endpoint=endpoint, token="hf_test").create_repo("me/x")
        ```
    """
    from huggingface_hub import constants

    previous = constants.HF_HUB_DISABLE_XET, constants.HF_HUB_OFFLINE
    constants.HF_HUB_DISABLE_XET, constants.HF_HUB_OFFLINE = True, False
    try:
        yield
    finally:
        constants.HF_HUB_DISABLE_XET, constants.HF_HUB_OFFLINE = previous


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class HubFile:
    """A committed file: bytes and whether it is stored in LFS."""

    data: bytes
    lfs: bool

    @property
    def oid(self) -> str:
        return hashlib.sha256(self.data).hexdigest() if self.lfs else _git_sha1(self.data)


@dataclass
class HubRepo:
    """A model repo: owner, visibility, files at ``main`` and the commit history."""

    repo_id: str
    private: bool
    files: dict[str, HubFile] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)

    @property
    def sha(self) -> str:
        return self.commits[-1] if self.commits else "0" * 40


class HubEmulator(Emulator):
    """The Hub, in memory. ``tokens`` maps accepted tokens to user names.

    Attributes:
        repos: repos by id.
        lfs_objects: uploaded LFS objects by sha256 (committed or not).
        fail_verify: answer the next LFS verify calls with 404 (lost upload).
    """

    def __init__(self, tokens: dict[str, str] | None = None) -> None:
        super().__init__()
        self.tokens = dict(tokens) if tokens is not None else {"hf_test": "me"}
        self.repos: dict[str, HubRepo] = {}
        self.lfs_objects: dict[str, bytes] = {}

    # -- helpers -------------------------------------------------------------------------------

    def add_repo(
        self, repo_id: str, files: dict[str, bytes] | None = None, *, private: bool = False
    ) -> HubRepo:
        """Seed a repo (files committed in one commit).

        Example:
            ```python
            hub.add_repo("me/old", {"old.safetensors": b"..."}, private=True)
            ```
        """
        repo = HubRepo(repo_id, private)
        for path, data in (files or {}).items():
            repo.files[path] = HubFile(data, _is_lfs(path, data))
            if repo.files[path].lfs:  # served by the CDN route that LFS files redirect to
                self.lfs_objects[repo.files[path].oid] = data
        if files:
            repo.commits.append(_commit_id(repo_id, len(repo.commits)))
        self.repos[repo_id] = repo
        return repo

    def _user(self, request: EmuRequest) -> tuple[str | None, EmuResponse | None]:
        header = request.header("authorization") or ""
        if not header:
            return None, None
        token = header.removeprefix("Bearer ").strip()
        user = self.tokens.get(token)
        if user is None:
            return None, _error(401, "Invalid credentials in Authorization header")
        return user, None

    def _readable(self, request: EmuRequest, repo_id: str) -> tuple[HubRepo | None, EmuResponse]:
        user, denied = self._user(request)
        if denied is not None:
            return None, denied
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and user != repo_id.split("/")[0]):
            # The Hub answers 401 for private repos of others, as if they did not exist.
            status = 404 if user is not None or repo is None else 401
            return None, _error(status, "Repository not found", code="RepoNotFound")
        return repo, EmuResponse(200)

    def _writable(self, request: EmuRequest, repo_id: str) -> tuple[HubRepo | None, EmuResponse]:
        user, denied = self._user(request)
        if denied is not None:
            return None, denied
        if user is None:
            return None, _error(401, "You must be authenticated to write")
        repo = self.repos.get(repo_id)
        if repo is None:
            return None, _error(404, "Repository not found", code="RepoNotFound")
        if repo_id.split("/")[0] != user:
            return None, _error(403, "You don't have the rights to write to this repo")
        return repo, EmuResponse(200)

    # -- repos -----------------------------------------------------------------------------------

    @route("GET", r"/api/whoami-v2")
    def whoami(self, request: EmuRequest) -> EmuResponse:
        user, denied = self._user(request)
        if denied is not None:
            return denied
        if user is None:
            return _error(401, "Invalid credentials in Authorization header")
        return EmuResponse(200, json={"type": "user", "name": user, "orgs": []})

    @route("POST", r"/api/repos/create")
    def create_repo(self, request: EmuRequest) -> EmuResponse:
        user, denied = self._user(request)
        if denied is not None:
            return denied
        if user is None:
            return _error(401, "Invalid credentials in Authorization header")
        body = request.json() or {}
        if body.get("type", "model") != "model":
            return _error(400, "HubEmulator only emulates model repos")
        namespace = body.get("organization") or user
        if namespace != user:
            return _error(403, f"You don't have the rights to create a repo under {namespace}")
        repo_id = f"{namespace}/{body.get('name')}"
        url = f"{_base(request)}/{repo_id}"
        if repo_id in self.repos:
            return _error(409, "You already created this model repo", extra={"url": url})
        self.repos[repo_id] = HubRepo(repo_id, private=body.get("visibility") == "private")
        return EmuResponse(200, json={"url": url, "name": repo_id, "id": repo_id})

    @route("GET", rf"/api/models/{_REPO}(?:/revision/(?P<revision>[^/]+))?")
    def model_info(self, request: EmuRequest, repo: str, revision: str | None) -> EmuResponse:
        found, answer = self._readable(request, repo)
        if found is None:
            return answer
        blobs = request.query.get("blobs", "").lower() == "true"
        siblings = []
        for path, item in sorted(found.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling["size"] = len(item.data)
                sibling["blobId"] = _git_sha1(item.data)
                if item.lfs:
                    sibling["lfs"] = {
                        "size": len(item.data),
                        "sha256": item.oid,
                        "pointerSize": 134,
                    }
            siblings.append(sibling)
        card = _card_data(found.files.get("README.md"))
        return EmuResponse(
            200,
            json={
                "id": repo,
                "modelId": repo,
                "author": repo.split("/")[0],
                "sha": found.sha,
                "private": found.private,
                "disabled": False,
                "gated": False,
                "tags": card.get("tags", []) if isinstance(card, dict) else [],
                "cardData": card or None,
                "siblings": siblings,
                "lastModified": "2025-01-01T00:00:00.000Z",
            },
        )

    @route("GET", rf"/api/models/{_REPO}/tree/(?P<revision>[^/]+)(?:/(?P<path>.*))?")
    def tree(self, request: EmuRequest, repo: str, revision: str, path: str | None) -> EmuResponse:
        found, answer = self._readable(request, repo)
        if found is None:
            return answer
        prefix = f"{path.rstrip('/')}/" if path else ""
        recursive = request.query.get("recursive", "").lower() == "true"
        entries: list[dict[str, Any]] = []
        folders: set[str] = set()
        for name, item in sorted(found.files.items()):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/")[0])
                continue
            entry: dict[str, Any] = {
                "type": "file",
                "path": name,
                "size": len(item.data),
                "oid": _git_sha1(item.data),
            }
            if item.lfs:
                entry["lfs"] = {"oid": item.oid, "size": len(item.data), "pointerSize": 134}
            entries.append(entry)
        entries.extend({"type": "directory", "path": f, "oid": "0" * 40} for f in sorted(folders))
        return EmuResponse(200, json=entries)

    @route("POST", r"/api/validate-yaml")
    def validate_yaml(self, request: EmuRequest) -> EmuResponse:
        content = str((request.json() or {}).get("content", ""))
        if content.startswith("---") and content.count("\n---") < 1:
            return EmuResponse(
                400, json={"errors": [{"message": "unterminated front matter"}], "warnings": []}
            )
        return EmuResponse(200, json={"errors": [], "warnings": []})

    # -- uploads -------------------------------------------------------------------------------

    @route("POST", rf"/api/models/{_REPO}/preupload/(?P<revision>[^/]+)")
    def preupload(self, request: EmuRequest, repo: str, revision: str) -> EmuResponse:
        found, answer = self._writable(request, repo)
        if found is None:
            return answer
        files = []
        for item in (request.json() or {}).get("files", []):
            path = str(item["path"])
            sample = base64.b64decode(item.get("sample", ""))
            lfs = _is_lfs(path, sample, int(item.get("size", 0)))
            existing = found.files.get(path)
            files.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": existing.oid if existing is not None else None,
                }
            )
        return EmuResponse(200, json={"files": files, "commitOid": found.sha})

    @route("POST", rf"/{_REPO}\.git/info/lfs/objects/batch")
    def lfs_batch(self, request: EmuRequest, repo: str) -> EmuResponse:
        found, answer = self._writable(request, repo)
        if found is None:
            return answer
        base = _base(request)
        objects = []
        for item in (request.json() or {}).get("objects", []):
            oid, size = str(item["oid"]), int(item["size"])
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if oid not in self.lfs_objects:
                entry["actions"] = {
                    "upload": {"href": f"{base}/_lfs/{repo}/{oid}?size={size}", "header": {}},
                    "verify": {"href": f"{base}/_lfs/{repo}/{oid}/verify", "header": {}},
                }
            objects.append(entry)
        return EmuResponse(
            200,
            json={"transfer": "basic", "objects": objects},
            headers={"content-type": "application/vnd.git-lfs+json"},
        )

    @route("PUT", rf"/_lfs/{_REPO}/(?P<oid>[0-9a-f]{{64}})")
    def lfs_upload(self, request: EmuRequest, repo: str, oid: str) -> EmuResponse:
        if hashlib.sha256(request.body).hexdigest() != oid:
            return _error(400, "content does not match its sha256 (upload truncated?)")
        expected = request.query.get("size")
        if expected is not None and int(expected) != len(request.body):
            return _error(400, "size mismatch")
        self.lfs_objects[oid] = request.body
        return EmuResponse(200, headers={"etag": f'"{oid[:32]}"'})

    @route("POST", rf"/_lfs/{_REPO}/(?P<oid>[0-9a-f]{{64}})/verify")
    def lfs_verify(self, request: EmuRequest, repo: str, oid: str) -> EmuResponse:
        if oid not in self.lfs_objects:
            return _error(404, f"object {oid} was never uploaded")
        return EmuResponse(200, json={"oid": oid})

    @route("POST", rf"/api/models/{_REPO}/commit/(?P<revision>[^/]+)")
    def commit(self, request: EmuRequest, repo: str, revision: str) -> EmuResponse:
        found, answer = self._writable(request, repo)
        if found is None:
            return answer
        if revision != "main":
            return _error(404, f"revision {revision} not found", code="RevisionNotFound")
        staged: dict[str, HubFile | None] = {}
        summary = ""
        for line in request.body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value", {})
            if key == "header":
                summary = str(value.get("summary", ""))
            elif key == "file":
                data = base64.b64decode(value["content"])
                staged[value["path"]] = HubFile(data, lfs=False)
            elif key == "lfsFile":
                blob = self.lfs_objects.get(value["oid"])
                if blob is None:
                    # Nothing is applied: a commit never references a missing object.
                    return _error(422, f"LFS object for {value['path']} was not uploaded")
                staged[value["path"]] = HubFile(blob, lfs=True)
            elif key in ("deletedFile", "deletedFolder"):
                staged[value["path"]] = None
            else:
                return _error(400, f"unknown commit operation {key!r}")
        for path, item in staged.items():
            if item is None:
                found.files = {
                    p: f
                    for p, f in found.files.items()
                    if p != path and not p.startswith(path + "/")
                }
            else:
                found.files[path] = item
        oid = _commit_id(repo + summary, len(found.commits))
        found.commits.append(oid)
        return EmuResponse(
            200,
            json={
                "commitUrl": f"{_base(request)}/{repo}/commit/{oid}",
                "commitOid": oid,
                "pullRequestUrl": None,
                "success": True,
            },
        )

    # -- downloads -----------------------------------------------------------------------------

    @route("GET", rf"/{_REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)")
    def resolve_file(self, request: EmuRequest, repo: str, revision: str, path: str) -> EmuResponse:
        return self._resolve(request, repo, path)

    def _resolve(self, request: EmuRequest, repo: str, path: str) -> EmuResponse:
        found, answer = self._readable(request, repo)
        if found is None:
            return answer
        item = found.files.get(path)
        if item is None:
            return _error(404, "Entry not found", code="EntryNotFound")
        headers = {"x-repo-commit": found.sha, "etag": f'"{item.oid}"'}
        if item.lfs:
            # The Hub redirects LFS files to its CDN; Range must survive the redirect.
            headers.update(
                {
                    "location": f"{_base(request)}/_cdn/{item.oid}",
                    "x-linked-size": str(len(item.data)),
                    "x-linked-etag": f'"{item.oid}"',
                }
            )
            return EmuResponse(302, headers=headers)
        return _ranged(request, item.data, headers)

    @route("HEAD", rf"/{_REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)")
    def resolve_head(self, request: EmuRequest, repo: str, revision: str, path: str) -> EmuResponse:
        answer = self._resolve(request, repo, path)
        return EmuResponse(answer.status, headers=answer.headers)

    @route("GET", r"/_cdn/(?P<oid>[0-9a-f]{64})")
    def cdn(self, request: EmuRequest, oid: str) -> EmuResponse:
        data = self.lfs_objects.get(oid)
        if data is None:
            return _error(404, "no such object")
        return _ranged(request, data, {"etag": f'"{oid}"'})

    @route("HEAD", r"/_cdn/(?P<oid>[0-9a-f]{64})")
    def cdn_head(self, request: EmuRequest, oid: str) -> EmuResponse:
        # The Hub's CDN answers HEAD too (huggingface_hub follows a same-host redirect with it).
        data = self.lfs_objects.get(oid)
        if data is None:
            return _error(404, "no such object")
        answer = _ranged(request, data, {"etag": f'"{oid}"'})
        return EmuResponse(answer.status, headers=answer.headers)


def _ranged(request: EmuRequest, data: bytes, headers: dict[str, str]) -> EmuResponse:
    headers = {**headers, "accept-ranges": "bytes"}
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", request.header("range") or "")
    if match is None:
        return EmuResponse(200, body=data, headers=headers)
    start = int(match[1])
    end = min(int(match[2]) if match[2] else len(data) - 1, len(data) - 1)
    if start >= len(data):
        return EmuResponse(416, headers={**headers, "content-range": f"bytes */{len(data)}"})
    headers["content-range"] = f"bytes {start}-{end}/{len(data)}"
    return EmuResponse(206, body=data[start : end + 1], headers=headers)


def _is_lfs(path: str, sample: bytes, size: int = 0) -> bool:
    return path.endswith(_LFS_SUFFIXES) or size >= _REGULAR_LIMIT or b"\x00" in sample[:512]


def _card_data(readme: HubFile | None) -> dict[str, Any]:
    """The YAML front matter, when PyYAML is around to read it (it is in tests)."""
    if readme is None:
        return {}
    text = readme.data.decode("utf-8", "replace")
    match = re.match(r"^---\n(.*?)\n---", text, re.DOTALL)
    if match is None:
        return {}
    try:
        import yaml
    except ImportError:
        return {}
    loaded = yaml.safe_load(match[1])
    return loaded if isinstance(loaded, dict) else {}


def _base(request: EmuRequest) -> str:
    return f"http://{request.header('host') or 'emulator.fluxkit.local'}"


def _commit_id(seed: str, index: int) -> str:
    return hashlib.sha1(f"{seed}:{index}".encode(), usedforsecurity=False).hexdigest()


def _error(
    status: int, message: str, *, code: str | None = None, extra: dict[str, Any] | None = None
) -> EmuResponse:
    headers = {"x-error-message": message}
    if code:
        headers["x-error-code"] = code
    return EmuResponse(status, json={"error": message, **(extra or {})}, headers=headers)
