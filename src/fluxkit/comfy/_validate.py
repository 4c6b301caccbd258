"""Check a graph against a server's ``/object_info`` before it costs a queue slot.

The verdicts mirror ComfyUI's own ``execution.validate_prompt`` (0.8.0): unknown classes and a
missing ``class_type`` (``invalid_prompt``), no output node (``prompt_no_outputs``), then, for
every node an output depends on: required inputs, links (to an existing node and output slot,
of a matching type), literal conversion (INT/FLOAT/STRING/BOOLEAN), ``min``/``max`` and combo
values in both encodings (legacy ``[[options], {...}]`` and V3 ``["COMBO", {"options": ...}]``).
Inputs the server validates with a custom hook (``LoadImage``'s uploaded file) accept any name
the client has uploaded. Like the server, unknown extra inputs are ignored.

```python
from fluxkit.comfy import ObjectInfo, flux_txt2img, validate_graph

info = ObjectInfo(httpx.get(f"{url}/object_info").json())
problems = validate_graph(flux_txt2img("a fox").graph, info)
```
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from fluxkit.comfy._errors import ModelFileMissingError, NodeProblem, WorkflowValidationError
from fluxkit.comfy._graph import Graph

__all__ = [
    "MODEL_FOLDERS",
    "ObjectInfo",
    "check_graph",
    "model_references",
    "validate_graph",
]

MODEL_FOLDERS: dict[tuple[str, str], str] = {
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name1"): "text_encoders",
    ("TripleCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name3"): "text_encoders",
    ("VAELoader", "vae_name"): "vae",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("StyleModelLoader", "style_model_name"): "style_models",
    ("ControlNetLoader", "control_net_name"): "controlnet",
    ("LoadFluxIPAdapter", "ipadatper"): "xlabs/ipadapters",
    ("LoadFluxIPAdapter", "clip_vision"): "clip_vision",
    ("FluxLoraLoader", "lora_name"): "xlabs/loras",
    ("LoadFluxControlNet", "controlnet_path"): "xlabs/controlnets",
}
"""(node class, input) -> the ComfyUI models folder the named file must be in."""


class ObjectInfo:
    """A server's ``GET /object_info`` answer (or a subset of classes), queried by the validator."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data: dict[str, Any] = dict(data)

    @classmethod
    def load(cls, path: str) -> ObjectInfo:
        """From a JSON file (``.json`` or ``.json.gz``)."""
        if path.endswith(".gz"):
            import gzip

            with gzip.open(path, "rt", encoding="utf-8") as handle:
                return cls(json.load(handle))
        with open(path, encoding="utf-8") as handle:
            return cls(json.load(handle))

    def update(self, data: Mapping[str, Any]) -> None:
        self.data.update(data)

    def __contains__(self, class_type: object) -> bool:
        return class_type in self.data

    def spec(self, class_type: str) -> dict[str, Any] | None:
        spec = self.data.get(class_type)
        return spec if isinstance(spec, dict) else None

    def inputs(self, class_type: str) -> dict[str, tuple[Any, dict[str, Any], str]]:
        """``{name: (type, options, "required" | "optional")}``."""
        spec = self.spec(class_type) or {}
        found: dict[str, tuple[Any, dict[str, Any], str]] = {}
        for category in ("required", "optional"):
            for name, entry in (spec.get("input", {}).get(category) or {}).items():
                if not isinstance(entry, list | tuple) or not entry:
                    continue
                options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
                found[name] = (entry[0], options, category)
        return found

    def outputs(self, class_type: str) -> list[str]:
        return list((self.spec(class_type) or {}).get("output") or [])

    def is_output(self, class_type: str) -> bool:
        return bool((self.spec(class_type) or {}).get("output_node"))

    def combo(self, class_type: str, name: str) -> list[Any] | None:
        """The options of a combo input (either encoding), None when it is not a combo."""
        entry = self.inputs(class_type).get(name)
        return None if entry is None else _combo_options(entry[0], entry[1])

    def set_combo(self, class_type: str, name: str, options: Iterable[Any]) -> None:
        """Replace a combo's options (an emulator's model folders)."""
        spec = self.spec(class_type)
        if spec is None:
            return
        for category in ("required", "optional"):
            entry = (spec.get("input", {}).get(category) or {}).get(name)
            if entry is None:
                continue
            if entry[0] == "COMBO":
                entry[1]["options"] = list(options)
            else:
                entry[0] = list(options)


def _combo_options(kind: Any, options: Mapping[str, Any]) -> list[Any] | None:
    if isinstance(kind, list):
        return kind
    if kind == "COMBO":
        return list(options.get("options") or [])
    return None


def _types_match(received: str, expected: Any) -> bool:
    if not isinstance(expected, str) or not isinstance(received, str):
        return True  # combos take literals; a linked combo is checked by the server at run time
    if received == expected or "*" in (received, expected):
        return True
    received_set = {t.strip() for t in received.split(",")}
    expected_set = {t.strip() for t in expected.split(",")}
    return bool(received_set & expected_set)


def _is_link(value: Any) -> bool:
    return isinstance(value, list)


def validate_graph(
    graph: Graph | Mapping[str, Any], info: ObjectInfo, *, uploaded: Collection[str] = ()
) -> list[NodeProblem]:
    """Every problem the server would report for ``graph``; empty when it would be accepted.

    Args:
        uploaded: file names uploaded to the server's ``input/`` (valid ``LoadImage`` values
            even when ``info`` predates the upload).
    """
    nodes = graph.to_api() if isinstance(graph, Graph) else dict(graph)
    for node_id, node in nodes.items():
        if not isinstance(node, Mapping) or "class_type" not in node:
            return [
                NodeProblem(
                    str(node_id),
                    None,
                    None,
                    "invalid_prompt",
                    "Cannot execute because a node is missing the class_type property.",
                    f"Node ID '#{node_id}'",
                )
            ]
        if node["class_type"] not in info:
            return [
                NodeProblem(
                    str(node_id),
                    str(node["class_type"]),
                    None,
                    "invalid_prompt",
                    f"Cannot execute because node {node['class_type']} does not exist.",
                    f"Node ID '#{node_id}'",
                )
            ]
    outputs = [nid for nid, node in nodes.items() if info.is_output(node["class_type"])]
    if not outputs:
        return [
            NodeProblem(
                None, None, None, "prompt_no_outputs", "Prompt has no outputs", "no output node"
            )
        ]
    problems: list[NodeProblem] = []
    seen: set[str] = set()
    stack = list(outputs)
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        problems.extend(_check_node(node_id, nodes, info, uploaded, stack))
    return sorted(problems, key=lambda p: (_order(p.node), p.input or ""))


def _order(node_id: str | None) -> tuple[int, str]:
    if node_id is None:
        return (-1, "")
    return (int(node_id), "") if node_id.isdigit() else (1 << 30, node_id)


def _check_node(
    node_id: str,
    nodes: Mapping[str, Any],
    info: ObjectInfo,
    uploaded: Collection[str],
    stack: list[str],
) -> list[NodeProblem]:
    node = nodes[node_id]
    class_type = str(node["class_type"])
    given = node.get("inputs") or {}
    problems: list[NodeProblem] = []

    def problem(name: str, kind: str, message: str, details: str) -> None:
        problems.append(NodeProblem(node_id, class_type, name, kind, message, details))

    for name, (kind, options, category) in info.inputs(class_type).items():
        if name not in given:
            if category == "required":
                problem(name, "required_input_missing", "Required input is missing", name)
            continue
        value = given[name]
        if _is_link(value):
            if len(value) != 2:
                problem(
                    name,
                    "bad_linked_input",
                    "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    name,
                )
                continue
            source, slot = str(value[0]), value[1]
            if source not in nodes:
                problem(
                    name,
                    "exception_during_inner_validation",
                    "Exception when validating inner node",
                    f"linked node {source!r} does not exist",
                )
                continue
            returns = info.outputs(str(nodes[source].get("class_type")))
            if not isinstance(slot, int) or not 0 <= slot < len(returns):
                problem(
                    name,
                    "exception_during_inner_validation",
                    "Exception when validating inner node",
                    f"node {source!r} has no output {slot!r} (it has {len(returns)})",
                )
                continue
            if not _types_match(returns[slot], kind):
                problem(
                    name,
                    "return_type_mismatch",
                    "Return type mismatch between linked nodes",
                    f"{name}, received_type({returns[slot]}) mismatch input_type({kind})",
                )
                continue
            stack.append(source)
            continue
        if isinstance(value, dict) and "__value__" in value:
            value = value["__value__"]
        try:
            if kind == "INT":
                value = int(value)
            elif kind == "FLOAT":
                value = float(value)
            elif kind == "STRING":
                value = str(value)
            elif kind == "BOOLEAN":
                value = bool(value)
        except (TypeError, ValueError) as exc:
            problem(
                name,
                "invalid_input_type",
                f"Failed to convert an input value to a {kind} value",
                f"{name}, {value}, {exc}",
            )
            continue
        if "min" in options and _lt(value, options["min"]):
            problem(
                name,
                "value_smaller_than_min",
                f"Value {value} smaller than min of {options['min']}",
                name,
            )
            continue
        if "max" in options and _lt(options["max"], value):
            problem(
                name,
                "value_bigger_than_max",
                f"Value {value} bigger than max of {options['max']}",
                name,
            )
            continue
        choices = _combo_options(kind, options)
        if choices is not None and value not in choices:
            if options.get("image_upload") or options.get("upload"):
                if value in uploaded:
                    continue
                problem(
                    name,
                    "custom_validation_failed",
                    "Custom validation failed for node",
                    f"{name} - Invalid image file: {value}",
                )
                continue
            listed = f"(list of length {len(choices)})" if len(choices) > 20 else str(choices)
            problem(
                name, "value_not_in_list", "Value not in list", f"{name}: '{value}' not in {listed}"
            )
    return problems


def _lt(a: Any, b: Any) -> bool:
    try:
        return bool(a < b)
    except TypeError:
        return False


def model_references(graph: Graph | Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """``(node, class_type, input, file name, models folder)`` for every model file named."""
    nodes = graph.to_api() if isinstance(graph, Graph) else dict(graph)
    found = []
    for node_id, node in nodes.items():
        class_type = str(node.get("class_type"))
        for name, value in (node.get("inputs") or {}).items():
            folder = MODEL_FOLDERS.get((class_type, name))
            if folder is not None and isinstance(value, str):
                found.append((str(node_id), class_type, name, value, folder))
    return found


def check_graph(
    graph: Graph | Mapping[str, Any],
    info: ObjectInfo,
    *,
    uploaded: Collection[str] = (),
    base_url: str = "",
) -> None:
    """Raise when the server would refuse ``graph``; a missing model file is named first.

    Raises:
        ModelFileMissingError: a model/LoRA file is not in the server's folder listing.
        WorkflowValidationError: any other verdict (all problems attached).
    """
    problems = validate_graph(graph, info, uploaded=uploaded)
    if not problems:
        return
    for node_id, class_type, name, filename, folder in model_references(graph):
        for p in problems:
            if p.node == node_id and p.input == name and p.type == "value_not_in_list":
                raise ModelFileMissingError(
                    filename,
                    folder=folder,
                    node=node_id,
                    class_type=class_type,
                    input=name,
                    available=[str(o) for o in info.combo(class_type, name) or []],
                    base_url=base_url,
                )
    raise WorkflowValidationError(problems)


def problems_from_response(body: Any) -> list[NodeProblem]:
    """The server's own ``400`` verdicts (``error`` + ``node_errors``) as `NodeProblem`."""
    problems: list[NodeProblem] = []
    if not isinstance(body, Mapping):
        return problems
    for node_id, entry in (body.get("node_errors") or {}).items():
        if not isinstance(entry, Mapping):
            continue
        for error in entry.get("errors") or []:
            extra = error.get("extra_info") or {}
            problems.append(
                NodeProblem(
                    str(node_id),
                    entry.get("class_type"),
                    extra.get("input_name"),
                    str(error.get("type", "")),
                    str(error.get("message", "")),
                    str(error.get("details", "")),
                )
            )
    if not problems and isinstance(body.get("error"), Mapping):
        error = body["error"]
        details = str(error.get("details", ""))
        node = details.split("'#")[1].rstrip("'") if "'#" in details else None
        problems.append(
            NodeProblem(
                node, None, None, str(error.get("type", "")), str(error.get("message", "")), details
            )
        )
    return problems
