"""The fluxkit error tree.

Every error fluxkit raises derives from `FluxkitError`, and subclasses the matching builtin
too, so generic handlers (``except ValueError``, ``except TimeoutError``) keep working::

    FluxkitError
    ├── ConfigurationError                   your set-up: fix it before calling again
    │   ├── MissingCredentialsError          names the environment variable and the argument
    │   ├── MissingDependencyError (ImportError)   names the extra: pip install "fluxkit[x]"
    │   └── UnknownBackendError (LookupError)      lists the valid backend names
    ├── InvalidRequestError (ValueError)     a request field is out of range: field, value, allowed
    │   └── UnsupportedFeatureError          what, on which backend/model, which backends have it
    ├── ProviderError                        the provider's side: backend, request_id, status_code,
    │   │                                    and the provider's own message
    │   ├── AuthenticationError              401/403: the key is wrong or lacks access
    │   ├── BillingError                     402: the account's credits are exhausted (nothing ran)
    │   ├── RateLimitError                   429 after retries: retry_after seconds when known
    │   ├── ProviderUnavailableError         5xx or connection failure after retries
    │   │   └── JobMayExistError             a submission got no clear answer (502/504, a drop
    │   │                                    after sending): the job may run; never resent
    │   ├── ProviderRejectedError            4xx: the provider refused the input (field named)
    │   ├── JobFailedError                   the job ran and failed (logs attached)
    │   ├── JobCancelledError                the job was cancelled (by you or the provider)
    │   ├── ResultUnavailableError           the job finished (and is paid for) but its result or
    │   │                                    images could not be fetched: carries their URLs
    │   └── ResponseFormatError              the provider answered something fluxkit cannot read
    ├── BudgetExceeded                       the estimated cost would pass ``max_cost``: refused
    │                                        before anything was sent
    ├── DeadlineExceeded (TimeoutError)      the whole-call ``timeout=`` passed; the job was
    │                                        cancelled at the provider where it could be
    └── OutputExistsError (FileExistsError)  a save would replace an existing file: pass
                                             ``overwrite=True`` (``--overwrite``) to allow it

Errors raised before any network call (``ConfigurationError``, ``InvalidRequestError``) mean no
money was spent.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import Any

__all__ = [
    "AuthenticationError",
    "BudgetExceeded",
    "BillingError",
    "ConfigurationError",
    "DeadlineExceeded",
    "FluxkitError",
    "InvalidRequestError",
    "JobCancelledError",
    "JobFailedError",
    "JobMayExistError",
    "MissingCredentialsError",
    "MissingDependencyError",
    "OutputExistsError",
    "ProviderError",
    "ProviderRejectedError",
    "ProviderUnavailableError",
    "RateLimitError",
    "ResponseFormatError",
    "ResultUnavailableError",
    "UnknownBackendError",
    "UnsupportedFeatureError",
]


class FluxkitError(Exception):
    """Root of every error fluxkit raises."""


# --- configuration -----------------------------------------------------------------------------


class ConfigurationError(FluxkitError):
    """The SDK is not set up to do what was asked (credentials, extras, backend name)."""


class MissingCredentialsError(ConfigurationError):
    """A backend needs a credential that was neither passed nor found in the environment."""

    def __init__(self, backend: str, *, env_vars: Sequence[str], argument: str = "api_key") -> None:
        self.backend = backend
        self.env_vars = tuple(env_vars)
        self.argument = argument
        envs = " or ".join(self.env_vars)
        super().__init__(
            f"{backend} needs credentials: pass Generator({backend!r}, {argument}=...) "
            f"or set {envs}."
        )


class MissingDependencyError(ConfigurationError, ImportError):
    """An optional package is not installed; the message names the extra to install."""

    def __init__(self, feature: str, *, extra: str, package: str | None = None) -> None:
        self.feature = feature
        self.extra = extra
        self.package = package
        what = f" (needs {package})" if package else ""
        super().__init__(f'{feature}{what} is not installed: pip install "fluxkit[{extra}]"')


class UnknownBackendError(ConfigurationError, LookupError):
    """The backend name is not one fluxkit knows."""

    def __init__(self, name: str, *, available: Sequence[str]) -> None:
        self.name = name
        self.available = tuple(available)
        super().__init__(f"unknown backend {name!r}; available: {', '.join(self.available)}")

    def __str__(self) -> str:  # LookupError would otherwise repr() the message
        return str(self.args[0])


# --- invalid requests --------------------------------------------------------------------------


class InvalidRequestError(FluxkitError, ValueError):
    """A request field is invalid. Raised before any network call.

    Attributes:
        field: the request field, e.g. ``"steps"`` or ``"loras[1].scale"``.
        value: the value given.
        allowed: a human description of what is allowed, e.g. ``"1-100"``.
    """

    def __init__(self, field: str, value: Any, allowed: str, *, reason: str | None = None) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        self.reason = reason
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        detail = f" ({reason})" if reason else ""
        super().__init__(f"{field}={shown} is invalid{detail}; allowed: {allowed}")


class UnsupportedFeatureError(InvalidRequestError):
    """The request asks for something this backend/model cannot do.

    Attributes:
        feature: what was asked, e.g. ``"3 LoRAs"`` or ``"reference_image"``.
        backend: the backend asked.
        model: the model asked.
        supported_by: backends (or models) where the feature would work.
    """

    def __init__(
        self,
        feature: str,
        *,
        backend: str,
        model: str | None,
        supported_by: Sequence[str] = (),
        field: str | None = None,
        value: Any = None,
        allowed: str = "",
    ) -> None:
        self.feature = feature
        self.backend = backend
        self.model = model
        self.supported_by = tuple(supported_by)
        where = f"{backend}" + (f" (model {model})" if model else "")
        hint = f"; supported on: {', '.join(self.supported_by)}" if self.supported_by else ""
        limit = f" (limit: {allowed})" if allowed else ""
        message = f"{feature} is not supported on {where}{limit}{hint}"
        ValueError.__init__(self, message)
        self.field = field or feature
        self.value = value
        self.allowed = allowed
        self.reason = None


# --- provider side -----------------------------------------------------------------------------


class ProviderError(FluxkitError):
    """The provider failed or refused. Carries what a bug report needs.

    Attributes:
        backend: backend name (``"fal"``, ...).
        request_id: the provider's job/prediction/request id, when one was assigned.
        status_code: the HTTP status of the failing response, when there was one.
        provider_message: the provider's own error text.
        body: the decoded error body (dict, list or text), for debugging.
    """

    def __init__(
        self,
        message: str,
        *,
        backend: str,
        request_id: str | None = None,
        status_code: int | None = None,
        provider_message: str | None = None,
        body: Any = None,
    ) -> None:
        self.backend = backend
        self.request_id = request_id
        self.status_code = status_code
        self.provider_message = provider_message
        self.body = body
        parts = [f"{backend}: {message}"]
        if status_code is not None:
            parts.append(f"HTTP {status_code}")
        if request_id:
            parts.append(f"request {request_id}")
        super().__init__(" | ".join(parts))


class AuthenticationError(ProviderError):
    """401/403: the credentials were refused or lack access to this model."""


class BillingError(ProviderError):
    """402 Payment Required: the account cannot pay for the job (credits exhausted, no payment
    method). The job was refused, so nothing ran and nothing was billed; retrying will not help
    until credits are added (or another account pays, e.g. ``bill_to=`` on ``huggingface``)."""


class RateLimitError(ProviderError):
    """429 that outlasted the retries. ``retry_after`` is the provider's hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class ProviderUnavailableError(ProviderError):
    """5xx or a connection failure that outlasted the retries."""


class JobMayExistError(ProviderUnavailableError):
    """A submission got no clear answer: the provider may have accepted it.

    Raised on a gateway's 502/504 to a submit, or a connection that dropped after the
    request was sent. fluxkit does not resend such a submission, because the first one may be
    running and billed; check the provider's dashboard (or its list of recent jobs) before
    submitting again.

    Attributes:
        url: where the submission was sent.
    """

    def __init__(self, message: str, *, url: str | None = None, **kwargs: Any) -> None:
        self.url = url
        super().__init__(message, **kwargs)


class ProviderRejectedError(ProviderError):
    """The provider refused the input (400/404/422). ``field`` names the input when it said."""

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        self.field = field
        super().__init__(message, **kwargs)


class JobFailedError(ProviderError):
    """The job was accepted, ran, and failed. ``logs`` holds what the provider reported."""

    def __init__(self, message: str, *, logs: Sequence[str] = (), **kwargs: Any) -> None:
        self.logs = tuple(logs)
        super().__init__(message, **kwargs)


class JobCancelledError(ProviderError):
    """The job was cancelled at the provider (by this process or someone else)."""


class ResultUnavailableError(ProviderError):
    """The job finished — and is paid for — but its result or images could not be fetched.

    Never a "job failed": the output exists at the provider. ``urls`` (result endpoint or image
    URLs) and ``request_id`` let you fetch it later, e.g. with ``httpx.get(url)``, before the
    provider's retention ends (fal: 6 minutes for large results, Replicate: 1 hour).

    Attributes:
        urls: the result or image URLs that could not be fetched.
    """

    def __init__(self, message: str, *, urls: Sequence[str] = (), **kwargs: Any) -> None:
        self.urls = tuple(urls)
        super().__init__(message, **kwargs)


class ResponseFormatError(ProviderError):
    """The provider answered with something fluxkit cannot interpret."""


# --- money -------------------------------------------------------------------------------------


class BudgetExceeded(FluxkitError):
    """Starting this work could pass a ``max_cost`` budget, so nothing was sent.

    Raised before any network call by ``generate(..., max_cost=)``, ``Generator(max_cost=)``
    (a session budget) and ``fluxkit.batch.run_batch(..., max_cost=)``.

    Attributes:
        estimate: the estimated cost of the refused work in USD (None: no price is known).
        limit: the budget in USD.
        spent: what the budget had already committed (session and batch budgets).
    """

    def __init__(
        self, estimate: float | None, *, limit: float, spent: float = 0.0, detail: str = ""
    ) -> None:
        self.estimate = estimate
        self.limit = limit
        self.spent = spent
        if estimate is None:
            what = f"its cost is unknown ({detail}); pass prices= to price it"
        else:
            what = f"it is estimated at ${estimate:.4f} ({detail})"
        left = f", ${limit - spent:.4f} of it left" if spent else ""
        super().__init__(f"refused before sending: budget ${limit:.4f}{left}, and {what}")


# --- deadlines ---------------------------------------------------------------------------------


class DeadlineExceeded(FluxkitError, TimeoutError):
    """The whole-call ``timeout=`` passed before the images arrived.

    Attributes:
        timeout: the deadline in seconds.
        backend: backend name.
        request_id: the provider's job id, if the job had been accepted.
        cancelled: True when a cancel request reached the provider.
    """

    def __init__(
        self,
        timeout: float,
        *,
        backend: str,
        request_id: str | None = None,
        cancelled: bool = False,
        local: bool = False,
    ) -> None:
        self.timeout = timeout
        self.backend = backend
        self.request_id = request_id
        self.cancelled = cancelled
        where = f" (request {request_id})" if request_id else ""
        if local:
            fate = "; the pipeline stopped at its next step" if cancelled else ""
        else:
            fate = "; the job was cancelled at the provider" if cancelled else ""
        super().__init__(f"{backend}: no result within {timeout:g} s{where}{fate}")


# --- local files -------------------------------------------------------------------------------


class OutputExistsError(FluxkitError, FileExistsError):
    """Writing would replace an existing file, and ``overwrite=True`` was not given.

    Nothing was written and the existing file is untouched.

    Attributes:
        path: the existing path.
        hint: how to allow replacing it.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, hint: str = "pass overwrite=True to replace it"
    ) -> None:
        self.path = os.fspath(path)
        self.hint = hint
        super().__init__(errno.EEXIST, f"{self.path} already exists; {hint}", self.path)

    def __str__(self) -> str:  # OSError would prefix "[Errno 17]" and append the path again
        return str(self.strerror)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path,), {"hint": self.hint})
