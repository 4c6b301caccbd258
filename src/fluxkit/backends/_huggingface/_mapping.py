"""The Hub's ``inferenceProviderMapping``: which provider serves a repo, under which id (pure).

``GET {hub}/api/models/{repo}?expand[]=inferenceProviderMapping`` answers, per provider, the
provider-side model id (``providerId``), a ``status`` (``live``, ``staging``: test only,
``error``: the Hub's last health check failed) and the ``task``; a LoRA repo registered as an
adapter also carries ``adapter: "lora"`` and ``adapterWeightsPath`` (its weight file), and its
``providerId`` is the provider's LoRA endpoint. The order is the Hub's preference order, which
``provider="auto"`` follows. The Hub answers a mapping object from ``model_info`` and a list from
``list_models``; both are read (``huggingface_hub.hf_api.ModelInfo`` does the same).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fluxkit._config import Secret
from fluxkit._core import HttpRequest, HttpResponse
from fluxkit._core._errors import error_from_response
from fluxkit._exceptions import ResponseFormatError, UnsupportedFeatureError

__all__ = [
    "MappingCache",
    "ProviderMapping",
    "choose_mapping",
    "mapping_request",
    "parse_mapping",
    "usable",
]

TEXT_TO_IMAGE = "text-to-image"


@dataclass(frozen=True)
class ProviderMapping:
    """One provider's entry for one Hub repo."""

    provider: str
    hf_model_id: str
    provider_id: str
    status: str
    task: str
    adapter: str | None = None
    adapter_weights_path: str | None = None

    @property
    def is_lora(self) -> bool:
        return self.adapter == "lora" and bool(self.adapter_weights_path)


def mapping_request(hub_url: str, repo: str, headers: Mapping[str, str | Secret]) -> HttpRequest:
    """The model-info request that carries the mapping (free, idempotent; the token lets gated
    and private repos answer)."""
    return HttpRequest(
        "GET",
        f"{hub_url}/api/models/{quote(repo, safe='/')}",
        headers=headers,
        params={"expand[]": "inferenceProviderMapping"},
        raise_for_status=False,
        timeout=30.0,
    )


def parse_mapping(response: HttpResponse, repo: str, backend: str) -> tuple[ProviderMapping, ...]:
    """The repo's mappings in the Hub's order.

    Raises:
        UnsupportedFeatureError: the repo does not exist on the Hub (404).
        ProviderError: any other refusal (401 for a gated repo without access, ...).
        ResponseFormatError: an answer that is not a model info.
    """
    if response.status_code == 404:
        raise UnsupportedFeatureError(
            f"model {repo!r}",
            backend=backend,
            model=repo,
            field="model",
            value=repo,
            allowed="a Hugging Face model repo id (owner/name) served by Inference Providers",
        )
    if not response.ok:
        raise error_from_response(backend, response)
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if not isinstance(body, dict):
        raise ResponseFormatError("model info is not an object", backend=backend, body=body)
    raw = body.get("inferenceProviderMapping") or {}
    entries: Iterable[tuple[str, Any]]
    if isinstance(raw, dict):
        entries = raw.items()
    elif isinstance(raw, list):
        entries = ((str(item.get("provider", "")), item) for item in raw if isinstance(item, dict))
    else:
        raise ResponseFormatError("unreadable inferenceProviderMapping", backend=backend, body=body)
    found: list[ProviderMapping] = []
    for provider, item in entries:
        if not isinstance(item, dict) or not item.get("providerId") or not provider:
            continue
        found.append(
            ProviderMapping(
                provider=provider,
                hf_model_id=str(body.get("id") or repo),
                provider_id=str(item["providerId"]),
                status=str(item.get("status") or "live"),
                task=str(item.get("task") or ""),
                adapter=item.get("adapter"),
                adapter_weights_path=item.get("adapterWeightsPath"),
            )
        )
    return tuple(found)


class MappingCache:
    """Mappings by (Hub URL, repo), kept for the life of the process (thread-safe).

    The Hub changes a mapping rarely (a provider added, a status flipped); ``clear()`` forgets
    everything, ``forget(repo)`` one repo.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[ProviderMapping, ...]] = {}

    def get(self, hub_url: str, repo: str) -> tuple[ProviderMapping, ...] | None:
        with self._lock:
            return self._entries.get((hub_url, repo))

    def put(self, hub_url: str, repo: str, mappings: tuple[ProviderMapping, ...]) -> None:
        with self._lock:
            self._entries[(hub_url, repo)] = mappings

    def forget(self, repo: str) -> None:
        with self._lock:
            for key in [key for key in self._entries if key[1] == repo]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def usable(mapping: ProviderMapping, *, statuses: frozenset[str], supported: Iterable[str]) -> bool:
    return (
        mapping.status in statuses
        and mapping.task == TEXT_TO_IMAGE
        and mapping.provider in tuple(supported)
    )


def choose_mapping(
    mappings: tuple[ProviderMapping, ...],
    provider: str,
    repo: str,
    *,
    backend: str,
    supported: tuple[str, ...],
    statuses: frozenset[str] = frozenset({"live"}),
) -> ProviderMapping:
    """The mapping to run on: ``provider``'s, or for ``"auto"`` the first usable one in the
    Hub's order (providers fluxkit does not speak are passed over).

    Raises:
        UnsupportedFeatureError: no usable mapping; names the providers that do serve the repo
            (and those whose mapping exists but is not live).
    """
    for mapping in mappings:
        if provider in ("auto", mapping.provider) and usable(
            mapping, statuses=statuses, supported=supported
        ):
            return mapping
    serving = [
        f"huggingface:{m.provider}"
        for m in mappings
        if usable(m, statuses=statuses, supported=supported)
    ]
    other = [f"{m.provider} ({m.status}, {m.task or 'no task'})" for m in mappings]
    if provider == "auto":
        feature = (
            f"text-to-image for {repo} on any provider fluxkit speaks ({', '.join(supported)})"
        )
    else:
        feature = f"{repo} on provider {provider!r}"
    mapped = f"mapped on the Hub: {', '.join(other)}" if other else "no provider serves it"
    raise UnsupportedFeatureError(
        feature,
        backend=backend,
        model=repo,
        supported_by=serving,
        field="provider",
        value=provider,
        allowed=f"a provider with a live text-to-image mapping; {mapped}",
    )
