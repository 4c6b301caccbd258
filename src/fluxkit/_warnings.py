"""Typed warnings returned on ``GenerationResult.warnings`` (and never printed by fluxkit)."""

from __future__ import annotations

__all__ = [
    "ContentFlagged",
    "FluxkitWarning",
    "ModelChosen",
    "ProviderNotice",
    "RequestCoerced",
]


class FluxkitWarning(UserWarning):
    """Base of fluxkit's warnings; ``str(w)`` is the human message."""


class RequestCoerced(FluxkitWarning):
    """``validate="coerce"`` changed a value to one the backend accepts."""

    def __init__(self, field: str, given: object, used: object, reason: str) -> None:
        self.field, self.given, self.used, self.reason = field, given, used, reason
        super().__init__(f"{field}: {given!r} -> {used!r} ({reason})")


class ModelChosen(RequestCoerced):
    """``validate="coerce"`` picked the model, because the request named none that could run it.

    ``used`` is the provider model id; ``reason`` lists the models the caller could name instead
    (in ``"strict"`` mode the same request raises `UnsupportedFeatureError`).

    Example:
        ```python
        [chosen] = [w for w in result.warnings if isinstance(w, fluxkit.ModelChosen)]
        chosen.used        # "black-forest-labs/FLUX.2-dev"
        ```
    """

    def __init__(self, model: str, reason: str) -> None:
        super().__init__("model", None, model, reason)


class ContentFlagged(FluxkitWarning):
    """The provider's safety checker flagged image ``index`` (it may be blacked out)."""

    def __init__(self, index: int, backend: str, *, dropped: bool = False) -> None:
        self.index, self.backend, self.dropped = index, backend, dropped
        fate = "the provider withheld it" if dropped else "it may be blank"
        super().__init__(f"{backend} flagged image {index} as NSFW ({fate})")


class ProviderNotice(FluxkitWarning):
    """Something the provider said or did that the caller should know about."""
