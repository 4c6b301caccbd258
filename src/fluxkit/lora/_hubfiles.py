"""Choosing the weights file of a Hub repo, the way the LoRA consumers do.

diffusers prefers ``pytorch_lora_weights.safetensors``; Replicate refuses a repo with more than
one ``.safetensors``. fluxkit takes the only root ``.safetensors``, else the diffusers name, and
otherwise asks for an explicit file rather than guessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import quote

from fluxkit._exceptions import InvalidRequestError, ResponseFormatError

if TYPE_CHECKING:
    import httpx

__all__ = ["DIFFUSERS_WEIGHT_NAME", "choose_primary", "pick_weight_file"]

DIFFUSERS_WEIGHT_NAME = "pytorch_lora_weights.safetensors"


def choose_primary(files: Sequence[str]) -> str | None:
    """The primary weights file among repo paths, or None when ambiguous or absent.

    Example:
        ```python
        from fluxkit.lora._hubfiles import choose_primary

        choose_primary(["README.md", "tok.safetensors"])       # "tok.safetensors"
        ```
    """
    weights = [f for f in files if f.endswith(".safetensors")]
    root = [f for f in weights if "/" not in f]
    if len(root) == 1:
        return root[0]
    if DIFFUSERS_WEIGHT_NAME in root:
        return DIFFUSERS_WEIGHT_NAME
    return None


def pick_weight_file(client: httpx.Client, endpoint: str, repo_id: str, revision: str) -> str:
    """The repo's primary ``.safetensors`` file, from the model API's file list."""
    from fluxkit.lora._sources import get_flow, raise_for_hub_status, run_hub_flow

    url = f"{endpoint}/api/models/{repo_id}"
    if revision != "main":
        url += f"/revision/{quote(revision, safe='')}"
    response = run_hub_flow(client, get_flow(url))
    raise_for_hub_status(response, f"hf://{repo_id}")
    try:
        files = [str(s["rfilename"]) for s in response.json().get("siblings") or []]
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ResponseFormatError("unreadable model info", backend="hub") from None
    primary = choose_primary(files)
    if primary is None:
        weights = [f for f in files if f.endswith(".safetensors")] or ["none"]
        raise InvalidRequestError(
            "source",
            f"hf://{repo_id}",
            f"hf://{repo_id}/<file> with one of: {', '.join(weights)}",
            reason="the repo has no single primary .safetensors file",
        )
    return primary
