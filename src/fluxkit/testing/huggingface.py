"""Hugging Face Inference Providers, emulated: the router, its providers and the Hub's mapping.

One app stands in for ``router.huggingface.co`` *and* the Hub's model-info endpoint, so both
``fluxkit`` (``Generator("huggingface", ...)``) and ``huggingface_hub.InferenceClient`` run
against it (in-process through ``emu.transport()``, or on a loopback port with ``emu.serve()``).
Behind the router paths sit fluxkit's own provider emulators, reused as they are:

=======  ==============================================  ========================================
GET      /api/models/{repo}[?expand[]=...]               model info with ``inferenceProviderMapping``
*        /fal-ai/{path}?_subdomain=queue                 `FalEmulator` (the queue API)
POST     /fal-ai/{endpoint}                              fal's synchronous ``fal.run``: the result
GET      /fal-ai/files/{name}                            the images fal rendered
*        /replicate/{path}                               `ReplicateEmulator`
*        /together/{path}                                `TogetherEmulator`
POST     /hf-inference/models/{repo}                     ``hf-inference``: image bytes
=======  ==============================================  ========================================

What the router adds, as the emulator plays it: ``Authorization: Bearer <HF token>`` (401
otherwise when ``api_key`` is set), ``X-HF-Bill-To`` recorded per request (`routed`), and
``402`` on every paid submission once `HuggingFaceEmulator.exhaust_credits` is called. The
providers' answers are passed back as the router passes them: fal's queue URLs name
``https://queue.fal.run`` (clients rebase them onto the router); URLs of images and predictions
are moved onto the router's host so they can be fetched from the test.

Assumed where nothing public says: the router forwards a provider's API paths as they are (the
queue's status/result/cancel routes, Replicate's prediction and cancel routes) and passes
provider headers (``X-Fal-Request-Timeout``, ``Cancel-After``) through; the 402 body is
``{"error": "..."}`` (the shape the Hub uses for its errors).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fluxkit._core import _media
from fluxkit.testing._emulator import Defer, Emulator, EmuRequest, EmuResponse, route
from fluxkit.testing._render import render_fake_image
from fluxkit.testing.fal import FalEmulator
from fluxkit.testing.replicate import ReplicateEmulator
from fluxkit.testing.together import TogetherEmulator

__all__ = ["CREDITS_EXHAUSTED", "HuggingFaceEmulator", "RoutedRequest"]

CREDITS_EXHAUSTED = (
    "You have exceeded your monthly included credits for Inference Providers. "
    "Subscribe to PRO to get 20x more monthly included credits."
)
_REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
_UPSTREAM = {
    "fal-ai": "queue.fal.run",
    "replicate": "api.replicate.com",
    "together": "api.together.xyz",
}
_BFL = "black-forest-labs"
DEFAULT_MODELS: dict[str, dict[str, str]] = {
    f"{_BFL}/FLUX.1-dev": {
        "fal-ai": "fal-ai/flux/dev",
        "replicate": f"{_BFL}/flux-dev",
        "together": f"{_BFL}/FLUX.1-dev",
        "hf-inference": f"{_BFL}/FLUX.1-dev",
    },
    f"{_BFL}/FLUX.1-schnell": {
        "fal-ai": "fal-ai/flux/schnell",
        "replicate": f"{_BFL}/flux-schnell",
        "together": f"{_BFL}/FLUX.1-schnell",
        "hf-inference": f"{_BFL}/FLUX.1-schnell",
    },
    f"{_BFL}/FLUX.1-Krea-dev": {
        "fal-ai": "fal-ai/flux/krea",
        "hf-inference": f"{_BFL}/FLUX.1-Krea-dev",
    },
}


@dataclass(frozen=True)
class RoutedRequest:
    """A request the router forwarded: to which provider, what, and who pays."""

    provider: str
    method: str
    path: str
    bill_to: str | None


class HuggingFaceEmulator(Emulator):
    """The router, the Hub's mapping endpoint and the providers behind them.

    Example:
        ```python
        import fluxkit
        from fluxkit.testing import HuggingFaceEmulator

        emu = HuggingFaceEmulator()
        emu.fal.script.run_seconds = 0.05                 # the emulated fal behind the router
        gen = emu.generator(provider="fal-ai")            # Generator("huggingface", ...)
        gen.generate("a fox", size=(256, 256), seed=3)
        [r.path for r in emu.routed]                      # the fal queue calls, via the router
        ```

    Attributes:
        fal, replicate, together: the provider emulators behind the router (script them).
        models: repo -> provider -> mapping entry (``providerId``, ``status``, ``task``,
            ``adapter``, ``adapterWeightsPath``), in the Hub's preference order.
        routed: every request forwarded to a provider. ``hf_inference``: bodies hf-inference got.
    """

    base_url = "http://router.huggingface.emulator.local"
    backend = "huggingface"

    def __init__(self, *, api_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.fal = FalEmulator(clock=self.clock)
        self.replicate = ReplicateEmulator(clock=self.clock)
        self.together = TogetherEmulator(clock=self.clock)
        self.models: dict[str, dict[str, dict[str, Any]]] = {}
        for repo, providers in DEFAULT_MODELS.items():
            self.add_model(repo, providers)
        self.routed: list[RoutedRequest] = []
        self.hf_inference: list[dict[str, Any]] = []
        self.credits_exhausted = False
        self._ids = itertools.count(1)

    # -- scripting -----------------------------------------------------------------------

    def add_model(
        self,
        repo: str,
        providers: Mapping[str, str],
        *,
        status: str | Mapping[str, str] = "live",
        task: str = "text-to-image",
    ) -> None:
        """Map ``repo`` to ``providers`` (provider -> provider-side id), in that order.

        ``status`` is one for all, or per provider (``{"together": "error"}``; others live).
        """
        entries: dict[str, dict[str, Any]] = {}
        for provider, provider_id in providers.items():
            state = status if isinstance(status, str) else status.get(provider, "live")
            entries[provider] = {"providerId": provider_id, "status": state, "task": task}
        self.models[repo] = entries

    def add_lora(
        self,
        repo: str,
        providers: Mapping[str, str],
        *,
        weights: str = "lora.safetensors",
        status: str = "live",
    ) -> None:
        """Register ``repo`` as a LoRA adapter: provider -> its LoRA endpoint, weight file."""
        self.add_model(repo, providers, status=status)
        for entry in self.models[repo].values():
            entry.update(adapter="lora", adapterWeightsPath=weights)

    def exhaust_credits(self, exhausted: bool = True) -> None:
        """Answer every paid submission with 402, as the router does when credits run out."""
        self.credits_exhausted = exhausted

    # -- the Hub ---------------------------------------------------------------------------

    @route("GET", rf"/api/models/{_REPO}")
    def model_info(self, request: EmuRequest, repo: str) -> EmuResponse:
        if (denied := self._denied(request, hub=True)) is not None:
            return denied
        mapping = self.models.get(repo)
        if mapping is None:
            return EmuResponse(
                404,
                json={"error": "Repository not found"},
                headers={"x-error-code": "RepoNotFound", "x-error-message": "Repository not found"},
            )
        body: dict[str, Any] = {
            "_id": f"emu{abs(hash(repo)) % 10**12:012d}",
            "id": repo,
            "inferenceProviderMapping": {name: dict(entry) for name, entry in mapping.items()},
        }
        if not any(key.startswith("expand") for key in request.query):
            body.update(
                modelId=repo,
                pipeline_tag="text-to-image",
                tags=["diffusers", "text-to-image"],
                library_name="diffusers",
                private=False,
            )
        return EmuResponse(200, json=body)

    # -- the router ------------------------------------------------------------------------

    def _denied(self, request: EmuRequest, *, hub: bool = False) -> EmuResponse | None:
        if self.api_key is None:
            return None
        if request.header("authorization") == f"Bearer {self.api_key}":
            return None
        if hub and request.header("authorization") is None:
            return None  # public model info needs no token
        return EmuResponse(401, json={"error": "Invalid credentials in Authorization header"})

    def _admit(self, request: EmuRequest, provider: str) -> EmuResponse | None:
        """The router's own checks, then the request is recorded as routed."""
        if (denied := self._denied(request)) is not None:
            return denied
        if self.credits_exhausted and request.method == "POST":
            return EmuResponse(402, json={"error": CREDITS_EXHAUSTED})
        self.routed.append(
            RoutedRequest(provider, request.method, request.path, request.header("x-hf-bill-to"))
        )
        return None

    def _forward(
        self, request: EmuRequest, provider: str, inner: Emulator, path: str
    ) -> EmuResponse | Defer:
        if (refused := self._admit(request, provider)) is not None:
            return refused
        upstream = self._upstream_request(request, provider, path)
        return _relay(inner.handle(upstream), self._rewriter(request, provider))

    def _upstream_request(self, request: EmuRequest, provider: str, path: str) -> EmuRequest:
        headers = {
            k: v for k, v in request.headers.items() if k not in ("authorization", "x-hf-bill-to")
        }
        headers["host"] = _UPSTREAM[provider]
        query = {k: v for k, v in request.query.items() if k != "_subdomain"}
        return EmuRequest(request.method, path, query, headers, request.body)

    def _rewriter(self, request: EmuRequest, provider: str) -> Callable[[str], str]:
        router = f"http://{request.header('host') or 'router.huggingface.emulator.local'}"
        upstream = f"http://{_UPSTREAM[provider]}/"
        if provider == "fal-ai":
            files = f"{upstream}files/"

            def fal(text: str) -> str:
                text = text.replace(files, f"{router}/fal-ai/files/")
                return text.replace(upstream, f"https://{_UPSTREAM[provider]}/")

            return fal
        return lambda text: text.replace(upstream, f"{router}/{provider}/")

    @route("GET", r"/fal-ai/files/(?P<name>[\w.-]+)")
    def fal_file(self, request: EmuRequest, name: str) -> EmuResponse | Defer:
        # Images are public CDN files: no token needed (huggingface_hub fetches them bare).
        upstream = self._upstream_request(request, "fal-ai", f"/files/{name}")
        return self.fal.handle(upstream)

    @route("GET", r"/fal-ai/(?P<path>.+)")
    def fal_get(self, request: EmuRequest, path: str) -> EmuResponse | Defer:
        return self._forward(request, "fal-ai", self.fal, f"/{path}")

    @route("PUT", r"/fal-ai/(?P<path>.+)")
    def fal_put(self, request: EmuRequest, path: str) -> EmuResponse | Defer:
        return self._forward(request, "fal-ai", self.fal, f"/{path}")

    @route("POST", r"/fal-ai/(?P<path>.+)")
    def fal_post(self, request: EmuRequest, path: str) -> EmuResponse | Defer:
        if request.query.get("_subdomain") == "queue":
            return self._forward(request, "fal-ai", self.fal, f"/{path}")
        return self._fal_sync(request, f"/{path}")

    def _fal_sync(self, request: EmuRequest, path: str) -> EmuResponse | Defer:
        """``fal.run``: submit to the queue, hold the answer until the job ends, answer the
        result (what ``huggingface_hub``'s ``FalAITextToImageTask`` calls)."""
        if (refused := self._admit(request, "fal-ai")) is not None:
            return refused
        rewrite = self._rewriter(request, "fal-ai")
        submitted = self.fal.handle(self._upstream_request(request, "fal-ai", path))
        if isinstance(submitted, Defer) or submitted.status != 200:
            return _relay(submitted, rewrite)
        job = self.fal.jobs[str(submitted.json["request_id"])]

        def finish() -> EmuResponse | Defer:
            with self.fal.lock:
                now = self.fal.clock()
                state, change = job.state(now), job.next_change(now)
            if state in ("queued", "running"):
                return Defer(max(0.0, (change or now) - now) + 0.0005, finish)
            result = EmuRequest(
                "GET", f"/{job.app}/requests/{job.id}", {}, {"host": _UPSTREAM["fal-ai"]}
            )
            return _relay(self.fal.handle(result), rewrite)

        return finish()

    @route("GET", r"/replicate/(?P<path>.+)")
    def replicate_get(self, request: EmuRequest, path: str) -> EmuResponse | Defer:
        if path.startswith("delivery/"):  # output files: public, like replicate.delivery
            upstream = self._upstream_request(request, "replicate", f"/{path}")
            return self.replicate.handle(upstream)
        return self._forward(request, "replicate", self.replicate, f"/{path}")

    @route("POST", r"/replicate/(?P<path>.+)")
    def replicate_post(self, request: EmuRequest, path: str) -> EmuResponse | Defer:
        return self._forward(request, "replicate", self.replicate, f"/{path}")

    @route("GET", r"/together/(?P<path>.+)")
    def together_get(self, request: EmuRequest, path: str) -> EmuResponse | Defer:
        return self._forward(request, "together", self.together, f"/{path}")

    @route("POST", r"/together/(?P<path>.+)")
    def together_post(self, request: EmuRequest, path: str) -> EmuResponse | Defer:
        return self._forward(request, "together", self.together, f"/{path}")

    @route("POST", rf"/hf-inference/models/{_REPO}")
    def hf_inference_generate(self, request: EmuRequest, repo: str) -> EmuResponse | Defer:
        if (refused := self._admit(request, "hf-inference")) is not None:
            return refused
        if "hf-inference" not in self.models.get(repo, {}):
            return EmuResponse(
                404, json={"error": f"Model {repo} is not served by provider hf-inference"}
            )
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), str):
            return EmuResponse(422, json={"error": "Input validation error: `inputs` is required"})
        parameters = body.get("parameters") or {}
        self.hf_inference.append(body)
        failure = self.script.take_job_failure()
        fmt = "jpeg" if "image/jpeg" in (request.header("accept") or "") else "png"
        request_id = f"emu-hf-{next(self._ids):06d}"

        def answer() -> EmuResponse:
            if failure is not None:
                return EmuResponse(
                    500, json={"error": failure}, headers={"x-request-id": request_id}
                )
            picture = render_fake_image(
                body["inputs"],
                int(parameters.get("seed", 0)) % 2**32,
                int(parameters.get("width", 1024)),
                int(parameters.get("height", 1024)),
            )
            data = _media.encode_image(picture, fmt)
            return EmuResponse(
                200, body=data, headers={"content-type": f"image/{fmt}", "x-request-id": request_id}
            )

        if self.script.run_seconds > 0:
            return Defer(self.script.run_seconds, answer)
        return answer()


def _relay(answer: EmuResponse | Defer, rewrite: Callable[[str], str]) -> EmuResponse | Defer:
    """The provider's answer as the router returns it (deferrals followed, URLs rewritten)."""
    if isinstance(answer, Defer):
        inner = answer
        return Defer(inner.seconds, lambda: _relay(inner.resume(), rewrite))
    if answer.json is not None:
        return EmuResponse(
            answer.status,
            json=_rewrite_json(answer.json, rewrite),
            body=answer.body,
            headers=dict(answer.headers),
        )
    kind = answer.headers.get("content-type", "")
    if answer.body and re.search(r"json|event-stream|text/", kind):
        body = rewrite(answer.body.decode("utf-8", errors="replace")).encode()
        return EmuResponse(answer.status, body=body, headers=dict(answer.headers))
    return answer


def _rewrite_json(value: Any, rewrite: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return rewrite(value)
    if isinstance(value, dict):
        return {key: _rewrite_json(item, rewrite) for key, item in value.items()}
    if isinstance(value, list):
        return [_rewrite_json(item, rewrite) for item in value]
    return value
