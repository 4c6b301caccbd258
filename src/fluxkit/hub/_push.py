"""``push_lora``: inspect, then create the repo and upload weights, samples and card in one commit.

One commit means an interrupted upload never leaves a card pointing at missing weights: either
everything lands or nothing is committed. LFS objects that did arrive stay on the Hub, so
running the push again only sends what is missing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fluxkit._config import Secret, resolve_secret
from fluxkit._exceptions import InvalidRequestError, ProviderUnavailableError
from fluxkit._types import LoRA
from fluxkit.hub._card import CardSample, FluxVariant, render_model_card
from fluxkit.hub._client import check_repo_id, hub_error, load_hub, make_api
from fluxkit.hub._samples import SampleLike, prepare_samples
from fluxkit.lora import LoRAInfo, inspect_lora, normalise_model

__all__ = ["push_lora"]

_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def push_lora(
    path: str | os.PathLike[str],
    repo_id: str,
    *,
    trigger_word: str,
    base_model: str | None = None,
    samples: Sequence[SampleLike] = (),
    private: bool = True,
    token: str | Secret | None = None,
    weight_name: str | None = None,
    replace: bool = False,
    endpoint: str | None = None,
) -> LoRA:
    """Publish a FLUX LoRA on the Hugging Face Hub with a model card; private by default.

    The file is inspected first: a non-FLUX, pickle or unreadable file is refused before
    anything is created. Then the repo is created (or reused), and the weights, the samples
    (``images/sample_N.jpg``, metadata stripped) and ``README.md`` are uploaded in one commit.

    Args:
        path: the local ``.safetensors`` LoRA.
        repo_id: ``owner/name`` on the Hub.
        trigger_word: the word that triggers the LoRA (``instance_prompt`` on the card).
        base_model: ``flux-dev``/``flux-schnell`` (or their Hub ids). None: from the file's
            metadata, else FLUX.1-dev.
        samples: image paths or ``(path, prompt)`` pairs for the card's gallery; images saved by
            fluxkit supply their own prompt.
        private: create the repo private (the default). An existing repo's visibility must match.
        token: a Hub token with write access (else ``HF_TOKEN``); never logged or stored.
        weight_name: the file name in the repo (default: the local file name).
        replace: delete other ``.safetensors`` files in the repo in the same commit (a repo
            must hold exactly one for Replicate and diffusers to pick it).
        endpoint: Hub URL (else ``HF_ENDPOINT``, else huggingface.co).

    Returns:
        ``LoRA("hf://owner/name/file.safetensors")``, usable in ``generate()`` on any backend.

    Raises:
        InvalidRequestError: bad arguments or an incompatible file (nothing was created).
        MissingCredentialsError: no token.
        MissingDependencyError: ``huggingface_hub`` is not installed (``fluxkit[hub]``).
        AuthenticationError: the Hub refused the token (401/403).
        ProviderUnavailableError: the upload failed; nothing was committed, run again to resume.

    Example:
        ```python
        from fluxkit.hub import push_lora

        lora = push_lora("tok.safetensors", "me/tok-lora", trigger_word="tok",
                         base_model="flux-dev", samples=["sample.png"])
        fluxkit.Generator("fal").generate("photo of tok", loras=[lora])
        ```
    """
    file = Path(path).expanduser()
    check_repo_id(repo_id)
    trigger = _check_trigger(trigger_word)
    info = inspect_lora(file)
    name = _weight_name(weight_name or file.name)
    variant = _variant(info, base_model)
    info.check_compatible(variant)
    prepared = prepare_samples(samples, trigger)
    secret = resolve_secret(token, env_vars=_ENV, backend="hub", argument_name="token")
    hub = load_hub()
    api = make_api(secret, endpoint)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        existing = api.model_info(repo_id, files_metadata=False)
    except Exception as exc:
        raise hub_error(exc, f"creating {repo_id}") from None
    if existing.private is not None and bool(existing.private) != private:
        shown = "private" if existing.private else "public"
        raise InvalidRequestError(
            "private",
            private,
            f"{existing.private} for the existing repo {repo_id}",
            reason=f"the repo exists and is {shown}; change it on the Hub or pass private=...",
        )
    others = [
        s.rfilename
        for s in existing.siblings or []
        if s.rfilename.endswith(".safetensors") and s.rfilename != name
    ]
    if others and not replace:
        raise InvalidRequestError(
            "replace",
            False,
            "True to delete the other weights in the same commit",
            reason=f"{repo_id} already holds {', '.join(others)}; a LoRA repo needs exactly one "
            ".safetensors (Replicate refuses several, diffusers picks one)",
        )
    card = render_model_card(
        repo_id=repo_id,
        weight_name=name,
        trigger_word=trigger,
        base_model=variant,
        samples=[CardSample(s.path_in_repo, s.prompt) for s in prepared],
        details=_details(info, file),
    )
    operations: list[Any] = [hub.CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(file))]
    operations += [
        hub.CommitOperationAdd(path_in_repo=s.path_in_repo, path_or_fileobj=s.data)
        for s in prepared
    ]
    operations.append(
        hub.CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode("utf-8"))
    )
    operations += [hub.CommitOperationDelete(path_in_repo=other) for other in others]
    try:
        api.create_commit(repo_id, operations, commit_message=f"Upload {name} with fluxkit")
    except Exception as exc:
        raise _upload_error(exc, repo_id) from None
    return LoRA(f"hf://{repo_id}/{name}", trigger_words=(trigger,))


def _upload_error(exc: BaseException, repo_id: str) -> Exception:
    cause = exc.__cause__ if isinstance(exc, RuntimeError) and exc.__cause__ else exc
    error = hub_error(cause, f"uploading to {repo_id}")
    if isinstance(exc, RuntimeError) and "uploading" in str(exc).lower():
        # huggingface_hub wraps LFS transfer failures: the commit was never sent.
        return ProviderUnavailableError(
            f"{exc} Nothing was committed to {repo_id}; run the push again to resume (files "
            "already uploaded are skipped)",
            backend="hub",
            status_code=getattr(error, "status_code", None),
        )
    return error


def _variant(info: LoRAInfo, base_model: str | None) -> FluxVariant:
    recorded = info.base_model if info.base_model in ("flux-dev", "flux-schnell") else None
    if base_model is None:
        return "flux-schnell" if recorded == "flux-schnell" else "flux-dev"
    chosen = normalise_model(base_model)
    if chosen == "flux":
        chosen = recorded or "flux-dev"
    if recorded and chosen != recorded:
        raise InvalidRequestError(
            "base_model",
            base_model,
            recorded,
            reason=f"the file says it was trained on {info.base_model_name} "
            f"({info.base_model_evidence})",
        )
    return "flux-schnell" if chosen == "flux-schnell" else "flux-dev"


def _details(info: LoRAInfo, file: Path) -> list[tuple[str, str]]:
    rows = [
        ("Layout", info.layout),
        ("Rank", ", ".join(map(str, info.ranks)) or "-"),
        ("Alpha", ", ".join(f"{a:g}" for a in info.alphas) or "-"),
        ("Modules", f"{info.module_count} ({', '.join(info.module_groups)})"),
        ("Size", f"{file.stat().st_size / 1e6:.1f} MB"),
    ]
    for key, label in (
        ("ss_max_train_steps", "Steps"),
        ("ss_learning_rate", "Learning rate"),
        ("ss_num_train_images", "Images"),
    ):
        if key in info.metadata:
            rows.append((label, info.metadata[key]))
    return rows


def _check_trigger(trigger: str) -> str:
    value = trigger.strip() if isinstance(trigger, str) else ""
    if not value or "\n" in value or len(value) > 64:
        raise InvalidRequestError("trigger_word", trigger, "1-64 characters on one line")
    return value


def _weight_name(name: str) -> str:
    cleaned = re.sub(r"[^\w.-]+", "_", name).strip("._") or "lora"
    if not cleaned.endswith(".safetensors"):
        raise InvalidRequestError("weight_name", name, "a file name ending in .safetensors")
    return cleaned
