"""``lora_status``: is a Hub repo a LoRA every backend can use right now, and if not, why."""

from __future__ import annotations

from dataclasses import dataclass, field

from fluxkit._config import Secret, resolve_secret
from fluxkit._exceptions import AuthenticationError, FluxkitError, ProviderRejectedError
from fluxkit._types import LoRA
from fluxkit.hub._client import check_repo_id, hub_error, make_api
from fluxkit.lora import DIFFUSERS_WEIGHT_NAME, LoRAInfo, choose_primary, inspect_lora

__all__ = ["LoRAStatus", "lora_status"]


@dataclass(frozen=True)
class LoRAStatus:
    """What a Hub repo holds, seen as a LoRA.

    Attributes:
        repo_id: the repo asked about.
        exists: the repo exists and this token can see it.
        private: visibility (None when it does not exist).
        safetensors: every ``.safetensors`` path in the repo.
        primary: the file backends will load (the only root ``.safetensors``, else
            ``pytorch_lora_weights.safetensors``), or None.
        ready: usable in ``generate()`` on every backend as is.
        problems: why it is not ready.
        notes: worth knowing, not blocking (private repos need a token on every backend).
        info: the primary file's inspection, when it was read.
        base_model: the card's ``base_model``, if any.
    """

    repo_id: str
    exists: bool
    private: bool | None = None
    safetensors: tuple[str, ...] = ()
    primary: str | None = None
    ready: bool = False
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    info: LoRAInfo | None = None
    base_model: str | None = None

    @property
    def lora(self) -> LoRA | None:
        """``LoRA("hf://repo/primary")`` when there is a primary file."""
        return LoRA(f"hf://{self.repo_id}/{self.primary}") if self.primary else None

    def summary(self) -> str:
        """Lines as printed by ``fluxkit lora status``.

        Example:
            ```python
            print(lora_status("me/tok-lora").summary())
            ```
        """
        if not self.exists:
            return f"{self.repo_id}: not found ({'; '.join(self.problems)})"
        state = "ready" if self.ready else "NOT ready"
        lines = [
            f"{self.repo_id}: {state} ({'private' if self.private else 'public'})",
            f"  safetensors: {', '.join(self.safetensors) or 'none'}",
            f"  primary:     {self.primary or 'none'}",
        ]
        if self.base_model:
            lines.append(f"  base model:  {self.base_model}")
        if self.info is not None:
            lines.append(
                f"  layout:      {self.info.layout}, {self.info.base_model_name}, "
                f"rank {', '.join(map(str, self.info.ranks)) or '-'}"
            )
        if self.lora is not None:
            lines.append(f"  use:         fluxkit.LoRA({self.lora.source!r})")
        lines.extend(f"  problem:     {p}" for p in self.problems)
        lines.extend(f"  note:        {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def lora_status(
    repo_id: str,
    *,
    token: str | Secret | None = None,
    endpoint: str | None = None,
    inspect: bool = True,
) -> LoRAStatus:
    """Check a Hub repo as a LoRA: exists, visibility, weights files, primary file, readiness.

    Args:
        repo_id: ``owner/name``.
        token: for private repos (else ``HF_TOKEN``; optional for public repos).
        endpoint: Hub URL (else ``HF_ENDPOINT``, else huggingface.co).
        inspect: also read the primary file's header (two small Range requests) and check it is
            a FLUX.1 LoRA.

    Raises:
        AuthenticationError: the token itself was refused.

    Example:
        ```python
        from fluxkit.hub import lora_status

        status = lora_status("me/tok-lora")
        status.ready, status.primary, status.problems
        ```
    """
    check_repo_id(repo_id)
    secret = resolve_secret(
        token,
        env_vars=("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
        backend="hub",
        argument_name="token",
        required=False,
    )
    api = make_api(secret, endpoint)
    try:
        model = api.model_info(repo_id, files_metadata=True)
    except Exception as exc:
        error = hub_error(exc, f"reading {repo_id}")
        if isinstance(error, ProviderRejectedError) or (
            isinstance(error, AuthenticationError)
            and "Invalid credentials" not in (error.provider_message or "")
        ):
            # The Hub answers 401/404 alike for missing repos and private repos of others.
            return LoRAStatus(
                repo_id,
                exists=False,
                problems=("not found, or private and not visible with this token",),
            )
        raise error from None
    files = [s.rfilename for s in model.siblings or []]
    weights = tuple(f for f in files if f.endswith(".safetensors"))
    primary = choose_primary(files)
    problems: list[str] = []
    notes: list[str] = []
    if not weights:
        problems.append("no .safetensors file")
    elif primary is None:
        problems.append(f"several .safetensors and none is the primary ({', '.join(weights)})")
    elif len(weights) > 1:
        problems.append(
            f"{len(weights)} .safetensors files: Replicate refuses repos with more than one "
            f"(diffusers picks {primary})"
        )
    if primary and primary != DIFFUSERS_WEIGHT_NAME and len(weights) > 1:
        notes.append("pass weight_name / use hf://repo/file to pick a file explicitly")
    if model.private:
        notes.append("private: every backend needs a token (HF_TOKEN; Replicate: hf_api_token)")
    card = model.card_data
    base = getattr(card, "base_model", None) if card is not None else None
    base_model = base if isinstance(base, str) else (base[0] if base else None)
    if base_model is None:
        notes.append("the card has no base_model: the Hub shows no model tree or snippet")
    info: LoRAInfo | None = None
    if inspect and primary:
        try:
            info = inspect_lora(f"hf://{repo_id}/{primary}", token=secret, endpoint=endpoint)
            info.check_compatible()
        except FluxkitError as exc:
            problems.append(f"{primary}: {exc}")
    return LoRAStatus(
        repo_id,
        exists=True,
        private=bool(model.private),
        safetensors=weights,
        primary=primary,
        ready=not problems,
        problems=tuple(problems),
        notes=tuple(notes),
        info=info,
        base_model=base_model,
    )
