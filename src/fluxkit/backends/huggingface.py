"""The ``huggingface`` backend: FLUX through Hugging Face Inference Providers, with one ``HF_TOKEN``.

```python
import fluxkit

gen = fluxkit.Generator("huggingface", provider="fal-ai")   # token from HF_TOKEN; or "auto"
result = gen.generate(
    "portrait of tok person, oil painting", model="flux-dev", seed=7, n=2,
    loras=[fluxkit.LoRA("hf://me/tok-lora", scale=0.9)],    # a registered adapter: its weights
)
result.seeds                                                 # (7, 8): one call per image
```

Hugging Face's router (``https://router.huggingface.co/{provider}/...``) forwards a request to
the provider and bills the Hugging Face account (or the organisation named by ``bill_to=``,
header ``X-HF-Bill-To``). How a call runs:

1. the model is a Hub repo id (``black-forest-labs/FLUX.1-dev``; fluxkit's aliases map to them).
   Its ``inferenceProviderMapping`` (``GET {hub}/api/models/{repo}?expand[]=inferenceProviderMapping``,
   cached per process) says which providers serve it, under which id, with which status.
   ``provider="auto"`` takes the first *live* text-to-image mapping in the Hub's order among the
   providers fluxkit speaks; a named provider must have a live mapping. Otherwise the call fails
   before anything is submitted, naming the providers that do serve the model;
2. LoRAs: a repo registered as a LoRA adapter (``adapter: "lora"``) brings its base endpoint and
   weight file from the mapping, as the model itself or as an ``hf://owner/repo`` in ``loras=``.
   Stacking and scales go the routed provider's own way: fal's ``flux-lora`` (any number, 0-4),
   Replicate's ``flux-dev-lora`` (two, -1-3); Together's and hf-inference's FLUX.1 models take
   none, and are refused before the call;
3. the routed provider's own limits are checked (strictly) before the submission;
4. the provider's fluxkit flow runs unchanged against ``{router}/{provider}``: fal's queue (with
   ``?_subdomain=queue``, cancel and ``X-Fal-Request-Timeout``), Replicate's predictions
   (cancel and ``Cancel-After``), Together's one round trip; ``hf-inference`` is a small flow of
   its own. The router's 402 (credits exhausted) is `BillingError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from fluxkit._capabilities import Capabilities, check_request
from fluxkit._config import Secret
from fluxkit._core import Flow, send
from fluxkit._exceptions import InvalidRequestError, UnsupportedFeatureError
from fluxkit._types import LoRA
from fluxkit._warnings import ProviderNotice
from fluxkit.backends._base import Call, CallOutput, HttpBackend
from fluxkit.backends._fal._models import LORA as FAL_LORA
from fluxkit.backends._fal._models import LORA_I2I as FAL_LORA_I2I
from fluxkit.backends._huggingface._hf_inference import CAPABILITIES as HF_INFERENCE_CAPABILITIES
from fluxkit.backends._huggingface._hf_inference import hf_inference_flow
from fluxkit.backends._huggingface._mapping import (
    MappingCache,
    ProviderMapping,
    choose_mapping,
    mapping_request,
    parse_mapping,
)
from fluxkit.backends._huggingface._models import CAPABILITIES, DEV, MODEL_ALIASES, PROVIDERS
from fluxkit.backends._huggingface._routing import BILL_TO_HEADER, RouterAuth, through_router
from fluxkit.backends._replicate._inputs import FLUX_DEV_LORA
from fluxkit.backends.fal import FalBackend
from fluxkit.backends.replicate import ReplicateBackend
from fluxkit.backends.together import DEV_LORA as TOGETHER_DEV_LORA
from fluxkit.backends.together import FLUX2_DEV as TOGETHER_FLUX2_DEV
from fluxkit.backends.together import TogetherBackend

__all__ = [
    "BILL_TO_HEADER",
    "CAPABILITIES",
    "MODEL_ALIASES",
    "PROVIDERS",
    "HuggingFaceBackend",
    "MappingCache",
    "ProviderMapping",
    "backend_class",
]

ProviderName = Literal["auto", "fal-ai", "replicate", "together", "hf-inference"]

_HUB_URL = "https://huggingface.co"
_PROCESS_MAPPINGS = MappingCache()
"""The default mapping cache, shared by every HuggingFaceBackend of the process."""
_ROUTED_QUERY: Mapping[str, Mapping[str, str]] = {"fal-ai": {"_subdomain": "queue"}}
"""Query the router needs per provider: fal's queue lives on its ``queue`` subdomain."""
_LORA_ENDPOINTS: Mapping[str, frozenset[str]] = {
    "fal-ai": frozenset({FAL_LORA, FAL_LORA_I2I}),
    "replicate": frozenset({FLUX_DEV_LORA}),
    "together": frozenset({TOGETHER_DEV_LORA, TOGETHER_FLUX2_DEV}),
}
"""Provider endpoints that read the LoRAs sent to them; anywhere else they would be dropped."""


class HuggingFaceBackend(HttpBackend):
    """Hugging Face Inference Providers (the router), billed to a Hugging Face account.

    Args:
        api_key: a Hugging Face token; defaults to ``HF_TOKEN``, then ``HUGGING_FACE_HUB_TOKEN``.
        base_url: the router root (default ``https://router.huggingface.co``), e.g. an emulator.
        model: default model: an alias (``flux-dev``, ``flux-schnell``, ``flux-krea-dev``) or a
            Hub repo id (a base model or a LoRA adapter repo).
        provider: ``"auto"`` (the Hub's order), ``"fal-ai"``, ``"replicate"``, ``"together"`` or
            ``"hf-inference"``.
        bill_to: an organisation to bill instead of the token's user (``X-HF-Bill-To``).
        hub_url: where model info comes from (default ``https://huggingface.co``; with a custom
            ``base_url``, that same root).
        mapping_cache: where mappings are remembered (default: one per process).
        allow_staging: also route to mappings in ``staging`` (the Hub: "test purposes only").
        stream_status: fal only: wait on its status stream (default) or poll.
    """

    name = "huggingface"
    env_vars = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
    default_base_url = "https://router.huggingface.co"
    capabilities_table = CAPABILITIES
    model_aliases = MODEL_ALIASES
    default_model = DEV

    def __init__(
        self,
        *,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        model: str | None = None,
        environ: Mapping[str, str] | None = None,
        provider: ProviderName | str = "auto",
        bill_to: str | None = None,
        hub_url: str | None = None,
        mapping_cache: MappingCache | None = None,
        allow_staging: bool = False,
        stream_status: bool = True,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, model=model, environ=environ)
        if provider not in ("auto", *PROVIDERS):
            raise InvalidRequestError(
                "provider", provider, f"'auto' or one of {', '.join(PROVIDERS)}"
            )
        if bill_to is not None and (not isinstance(bill_to, str) or not bill_to.strip()):
            raise InvalidRequestError("bill_to", bill_to, "an organisation name")
        self.provider = provider
        self.bill_to = bill_to.strip() if bill_to else None
        custom_root = self.base_url != self.default_base_url
        self.hub_url = (hub_url or (self.base_url if custom_root else _HUB_URL)).rstrip("/")
        self.mappings = _PROCESS_MAPPINGS if mapping_cache is None else mapping_cache
        self.statuses = frozenset({"live", "staging"} if allow_staging else {"live"})
        token = self.api_key
        assert token is not None
        self._routes: dict[str, Any] = {
            "fal-ai": FalBackend(
                api_key=token, base_url=f"{self.base_url}/fal-ai", stream_status=stream_status
            ),
            "replicate": ReplicateBackend(api_key=token, base_url=f"{self.base_url}/replicate"),
            "together": TogetherBackend(api_key=token, base_url=f"{self.base_url}/together"),
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider!r}, base_url={self.base_url!r}, "
            f"model={self.model!r}, api_key={self.api_key!r})"
        )

    # -- the flow --------------------------------------------------------------------------

    def flow(self, call: Call) -> Flow[CallOutput]:
        repo = call.model
        mappings = yield from self._mappings(repo)
        mapping = choose_mapping(
            mappings,
            self.provider,
            repo,
            backend=self.name,
            supported=PROVIDERS,
            statuses=self.statuses,
        )
        loras = yield from self._adapter_loras(call.request.loras, mapping.provider)
        if mapping.is_lora and mapping.provider != "hf-inference":
            # The model is a LoRA adapter repo: its base endpoint is the mapping's providerId.
            weights = LoRA(f"hf://{repo}/{mapping.adapter_weights_path}")
            loras = (weights, *loras)
        routed = self.routed_call(call, mapping, loras)
        auth = RouterAuth(
            self.base_url,
            self._token(),
            self.bill_to,
            self.name,
            _ROUTED_QUERY.get(mapping.provider, {}),
        )
        if mapping.provider == "hf-inference":
            inner = hf_inference_flow(
                routed, f"{self.base_url}/hf-inference/models/{routed.model}", backend=self.name
            )
        else:
            inner = self._routes[mapping.provider].flow(routed)
        output: CallOutput = yield from through_router(inner, auth)
        if self.provider == "auto" and call.index == 0:
            output.warnings.append(
                ProviderNotice(f"routed to {mapping.provider} as {routed.model} (provider='auto')")
            )
        return output

    def routed_call(self, call: Call, mapping: ProviderMapping, loras: tuple[LoRA, ...]) -> Call:
        """The call as the routed provider's flow takes it: its endpoint, LoRAs resolved,
        checked against that provider's own limits (pure; raises before anything is sent).

        Raises:
            UnsupportedFeatureError / InvalidRequestError: the routed model cannot do it.
        """
        provider = mapping.provider
        request = call.request.evolve(loras=loras, model=mapping.provider_id)
        caps: Capabilities
        if provider == "hf-inference":
            endpoint, caps = mapping.provider_id, HF_INFERENCE_CAPABILITIES
        else:
            inner = self._routes[provider]
            endpoint = inner.resolve_model(request)
            caps = inner.capabilities(endpoint)
        if loras and endpoint not in _LORA_ENDPOINTS.get(provider, frozenset()):
            raise UnsupportedFeatureError(
                "LoRAs",
                backend=self.name,
                model=f"{provider}:{endpoint}",
                supported_by=("huggingface:fal-ai", "huggingface:replicate"),
                field="loras",
                value=len(loras),
                allowed=f"none: {provider} serves {call.model} without a LoRA endpoint",
            )
        request, _ = check_request(
            request, caps, backend=self.name, model=f"{provider}:{endpoint}", mode="strict"
        )
        return Call(request.evolve(model=endpoint), endpoint, call.seeds, call.index)

    # -- mappings --------------------------------------------------------------------------

    def _token(self) -> Secret:
        assert self.api_key is not None
        return self.api_key

    def _mappings(self, repo: str) -> Flow[tuple[ProviderMapping, ...]]:
        cached = self.mappings.get(self.hub_url, repo)
        if cached is not None:
            return cached
        response = yield from send(
            mapping_request(
                self.hub_url, repo, {"authorization": self._token().prefixed("Bearer ")}
            )
        )
        found = parse_mapping(response, repo, self.name)
        self.mappings.put(self.hub_url, repo, found)
        return found

    def _adapter_loras(self, loras: tuple[LoRA, ...], provider: str) -> Flow[tuple[LoRA, ...]]:
        """Bare ``hf://owner/repo`` LoRAs registered as adapters for ``provider`` get their
        weight file from the mapping; the rest go as given (the provider's own way)."""
        resolved: list[LoRA] = []
        for index, lora in enumerate(loras):
            if lora.kind != "hf" or lora.filename or lora.revision or lora.repo_id is None:
                resolved.append(lora)
                continue
            try:
                mappings = yield from self._mappings(lora.repo_id)
            except UnsupportedFeatureError:
                raise InvalidRequestError(
                    f"loras[{index}].source",
                    lora.source,
                    "a LoRA repo that exists on the Hub",
                    reason="not found on the Hub",
                ) from None
            adapter = next((m for m in mappings if m.provider == provider and m.is_lora), None)
            if adapter is None:
                resolved.append(lora)
            else:
                source = f"hf://{lora.repo_id}/{adapter.adapter_weights_path}"
                resolved.append(LoRA(source, lora.scale, trigger_words=lora.trigger_words))
        return tuple(resolved)


backend_class = HuggingFaceBackend
