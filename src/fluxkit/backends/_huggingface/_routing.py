"""Run a provider's flow through the Hugging Face router (pure: a flow wrapping a flow).

The router forwards ``https://router.huggingface.co/{provider}/{path}`` to the provider's own API
and bills the Hugging Face account whose token comes with it. So fluxkit's fal, Replicate and
Together flows run unchanged against ``{router}/{provider}``; this wrapper only changes what
crosses the wire:

* every request to the router carries ``Authorization: Bearer <HF token>`` (in place of the
  provider's own scheme, e.g. fal's ``Key``), ``X-HF-Bill-To`` when an organisation pays, and
  the provider's routing query (fal's queue: ``?_subdomain=queue``, as
  ``huggingface_hub``'s ``FalAIQueueTask`` sends it);
* a request anywhere else loses its ``Authorization`` header: the token never leaves Hugging Face;
* the router's ``402 Payment Required`` becomes `BillingError` on any request,
  and other refusals are mapped exactly as the driver maps them.

Acceptance, cancel requests (rewritten the same way), waits and events pass through, so the
drivers' money rules hold as they do for the provider itself.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from fluxkit._config import Secret
from fluxkit._core import Accepted, HttpRequest, HttpResponse
from fluxkit._core._errors import error_from_response, provider_message
from fluxkit._exceptions import BillingError

__all__ = ["BILL_TO_HEADER", "RouterAuth", "billing_error", "through_router"]

T = TypeVar("T")

BILL_TO_HEADER = "x-hf-bill-to"
"""The header naming the organisation billed (``huggingface_hub.constants.HUGGINGFACE_HEADER_X_BILL_TO``)."""
_BILLING_HINT = (
    "add credits or subscribe to PRO at https://huggingface.co/settings/billing, or bill an "
    "organisation you belong to with bill_to="
)


@dataclass(frozen=True)
class RouterAuth:
    """What every routed request gets: where the router is, the token, who pays."""

    router_url: str
    token: Secret
    bill_to: str | None = None
    backend: str = "huggingface"
    query: Mapping[str, str] = field(default_factory=dict)

    def owns(self, url: str) -> bool:
        return url.startswith(self.router_url + "/")

    def rewrite(self, request: HttpRequest) -> HttpRequest:
        """``request`` as it must be sent: HF credentials to the router, none elsewhere."""
        headers: dict[str, str | Secret] = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in ("authorization", BILL_TO_HEADER)
        }
        if not self.owns(request.url):
            return replace(request, headers=headers)
        headers["authorization"] = self.token.prefixed("Bearer ")
        if self.bill_to:
            headers[BILL_TO_HEADER] = self.bill_to
        params = {**self.query, **(request.params or {})} or None
        return replace(request, headers=headers, params=params, raise_for_status=False)


def billing_error(response: HttpResponse, backend: str, request_id: str | None) -> BillingError:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    said = provider_message(body)[0]
    return BillingError(
        f"payment required: {said or 'the account has no credits left'} — {_BILLING_HINT}",
        backend=backend,
        request_id=request_id,
        status_code=response.status_code,
        provider_message=said,
        body=body,
    )


def _screen(
    auth: RouterAuth,
    sent: HttpRequest,
    original: HttpRequest,
    response: HttpResponse,
    rid: str | None,
) -> HttpResponse:
    """Raise for the answers the original request would not have received."""
    if not auth.owns(sent.url):
        return response
    if response.status_code == 402:
        raise billing_error(response, auth.backend, rid)
    if not response.ok and original.raise_for_status:
        raise error_from_response(auth.backend, response, request_id=rid)
    return response


def through_router(flow: Generator[Any, Any, T], auth: RouterAuth) -> Generator[Any, Any, T]:
    """Drive ``flow`` (a provider flow pointed at ``{router}/{provider}``) through the router.

    Example:
        ```python
        from fluxkit import Secret
        from fluxkit.backends._huggingface._routing import RouterAuth, through_router

        auth = RouterAuth("https://router.huggingface.co", Secret("hf_..."), bill_to="my-org")
        routed = through_router(fal_backend.flow(call), auth)   # a flow like any other
        ```
    """
    reply: Any = None
    request_id: str | None = None
    try:
        while True:
            try:
                step = flow.send(reply)
            except StopIteration as stop:
                value: T = stop.value
                return value
            reply = None
            if isinstance(step, HttpRequest):
                sent = auth.rewrite(step)
                response = yield sent
                reply = _screen(auth, sent, step, response, request_id)
            elif isinstance(step, Accepted):
                request_id = step.request_id
                cancel = auth.rewrite(step.cancel) if step.cancel is not None else None
                yield Accepted(step.request_id, cancel)
            else:
                reply = yield step
    finally:
        flow.close()
