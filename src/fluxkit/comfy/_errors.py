"""Typed errors for ComfyUI graphs and servers (all in the fluxkit error tree)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fluxkit._exceptions import InvalidRequestError, JobFailedError, ProviderRejectedError

__all__ = [
    "ComfyExecutionError",
    "ModelFileMissingError",
    "NodeProblem",
    "WorkflowRejectedError",
    "WorkflowValidationError",
    "XLabsIPAdapterIncompatibleError",
]


@dataclass(frozen=True)
class NodeProblem:
    """One verdict on one node input, in ComfyUI's own terms.

    Attributes:
        node: the node id (None for a graph-level problem such as ``prompt_no_outputs``).
        class_type: the node's class.
        input: the input at fault, when there is one.
        type: ComfyUI's error type (``value_not_in_list``, ``required_input_missing``,
            ``return_type_mismatch``, ``value_smaller_than_min``, ``invalid_prompt``, ...).
        message: ComfyUI's message; ``details`` its details.
    """

    node: str | None
    class_type: str | None
    input: str | None
    type: str
    message: str
    details: str = ""

    def __str__(self) -> str:
        where = "graph" if self.node is None else f"node {self.node} ({self.class_type})"
        if self.input:
            where += f" input {self.input!r}"
        detail = f": {self.details}" if self.details else ""
        return f"{where}: {self.type}: {self.message}{detail}"


def _summary(problems: Sequence[NodeProblem]) -> str:
    shown = "; ".join(str(p) for p in problems[:5])
    more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
    return shown + more


class WorkflowValidationError(InvalidRequestError):
    """The graph would be refused by the server (checked against its ``/object_info``).

    Raised before submission: nothing was queued. ``problems`` lists every verdict.
    """

    def __init__(self, problems: Sequence[NodeProblem]) -> None:
        self.problems = tuple(problems)
        first = self.problems[0]
        ValueError.__init__(self, f"invalid ComfyUI graph: {_summary(self.problems)}")
        self.field = f"node {first.node}.{first.input}" if first.input else f"node {first.node}"
        self.value = first.details
        self.allowed = first.message
        self.reason = first.type


class ModelFileMissingError(InvalidRequestError):
    """A model or LoRA file the graph names is not on the server.

    Attributes:
        filename: the missing file; ``folder``: the ComfyUI models folder it must go in
        (``loras``, ``diffusion_models``, ``xlabs/ipadapters``, ...); ``node``/``input``:
        where the graph names it; ``available``: what the server has there.
    """

    def __init__(
        self,
        filename: str,
        *,
        folder: str,
        node: str,
        class_type: str,
        input: str,
        available: Sequence[str] = (),
        base_url: str = "",
    ) -> None:
        self.filename, self.folder, self.node, self.input = filename, folder, node, input
        self.class_type = class_type
        self.available = tuple(available)
        have = ", ".join(self.available[:8]) or "nothing"
        server = f" on {base_url}" if base_url else ""
        ValueError.__init__(
            self,
            f"model file {filename!r} (node {node} {class_type}.{input}) is not{server}: put it "
            f"in ComfyUI's models/{folder}/ (the server lists there: {have})",
        )
        self.field = f"node {node}.{input}"
        self.value = filename
        self.allowed = f"a file in models/{folder}/"
        self.reason = "missing on the server"


class WorkflowRejectedError(ProviderRejectedError):
    """``POST /prompt`` answered 400: the server's own verdict, per node (``problems``)."""

    def __init__(self, message: str, *, problems: Sequence[NodeProblem] = (), **kwargs: Any):
        self.problems = tuple(problems)
        field = None
        if self.problems and self.problems[0].node is not None:
            p = self.problems[0]
            field = f"node {p.node}.{p.input}" if p.input else f"node {p.node}"
        super().__init__(message, field=field, **kwargs)


class ComfyExecutionError(JobFailedError):
    """The prompt ran and a node raised (``execution_error``).

    Attributes:
        node, node_type: where it failed; exception_type, exception_message: what ComfyUI said.
    """

    def __init__(
        self,
        message: str,
        *,
        node: str | None = None,
        node_type: str | None = None,
        exception_type: str | None = None,
        exception_message: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.node, self.node_type = node, node_type
        self.exception_type, self.exception_message = exception_type, exception_message
        super().__init__(message, **kwargs)


class XLabsIPAdapterIncompatibleError(ComfyExecutionError):
    """The XLabs IP-Adapter cannot sample on this ComfyUI (``attn_mask`` / dtype clash).

    Cause: ComfyUI >= 0.3.8 passes ``attn_mask``/``transformer_options`` to FLUX blocks and the
    block class x-flux-comfyui swaps in does not accept them (XLabs-AI/x-flux-comfyui issues
    #160 and #180). Fix: run ComfyUI with fluxkit's compatibility patch (the Modal deployment
    ships it; ``fluxkit.deploy.modal_comfyui``), or pin ComfyUI <= 0.3.7 with x-flux-comfyui.
    """
