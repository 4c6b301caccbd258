"""Bind fluxkit's request onto a graph you already have, or onto a one-shot JSON endpoint.

Teams with an exported API-format workflow keep it: a `WorkflowMapping` names which node
inputs take the prompt, seed, size, steps, LoRAs and images (``"node id.input name"``):

```python
import fluxkit
from fluxkit.comfy import WorkflowMapping

mapping = WorkflowMapping(
    prompt="6.text", seed="25.noise_seed", width=("27.width", "30.width"),
    height=("27.height", "30.height"), steps="17.steps", guidance="26.guidance",
    loras="30.model",          # LoraLoaderModelOnly nodes are spliced in front of this input
)
gen = fluxkit.Generator("comfyui", base_url="http://127.0.0.1:8188",
                        workflow="my_flux_api.json", mapping=mapping)
```

The same mechanism drives self-hosted one-shot services: a `JsonEndpoint` names the JSON
keys of the request body (``"prompt"``, ``"reference_image"``, ...) instead of node inputs;
`FLUX_IPADAPTER_FACEID` is the common ``POST /flux-ipadapter-faceid`` shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from fluxkit.comfy._graph import Graph

__all__ = [
    "FLUX_IPADAPTER_FACEID",
    "JsonEndpoint",
    "WorkflowMapping",
    "bind_json",
    "bind_workflow",
    "splice_loras",
]

Paths = str | Sequence[str] | None

_FIELDS = (
    "prompt",
    "negative_prompt",
    "seed",
    "width",
    "height",
    "steps",
    "guidance",
    "cfg",
    "strength",
    "image",
    "reference_image",
    "reference_strength",
    "filename_prefix",
)


def _paths(value: Paths) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True)
class WorkflowMapping:
    """Which inputs of a graph take each request field (``"node.input"``, or several).

    ``image``/``reference_image`` name ``LoadImage`` inputs (they receive the uploaded file's
    name); ``strength`` usually names the sampler's ``denoise``; ``loras`` names the ``MODEL``
    input the LoRA chain is spliced in front of; ``output`` the node whose images are the result
    (default: every output node). Fields left ``None`` keep the graph's own values — a request
    that sets such a field is refused, so nothing is silently dropped.
    """

    prompt: Paths = None
    negative_prompt: Paths = None
    seed: Paths = None
    width: Paths = None
    height: Paths = None
    steps: Paths = None
    guidance: Paths = None
    cfg: Paths = None
    strength: Paths = None
    image: Paths = None
    reference_image: Paths = None
    reference_strength: Paths = None
    filename_prefix: Paths = None
    loras: str | None = None
    output: str | None = None

    def bound(self) -> list[str]:
        """The request fields this mapping places."""
        names = [name for name in _FIELDS if _paths(getattr(self, name))]
        return names + (["loras"] if self.loras else [])

    @classmethod
    def detect(cls, graph: Graph) -> WorkflowMapping:
        """Guess the mapping of a standard FLUX graph (``KSampler`` or ``SamplerCustomAdvanced``).

        Raises:
            ValueError: the graph is ambiguous (two samplers, no prompt node): give a mapping.
        """
        found: dict[str, Any] = {}
        samplers = graph.nodes_of("KSampler")
        if len(samplers) == 1:
            s = samplers[0]
            found.update(
                seed=f"{s}.seed", steps=f"{s}.steps", cfg=f"{s}.cfg", strength=f"{s}.denoise"
            )
            found["loras"] = f"{s}.model"
            positive = _follow(graph, s, "positive")
            negative = _follow(graph, s, "negative")
            if negative and graph.node(negative)["class_type"] == "CLIPTextEncode":
                found["negative_prompt"] = f"{negative}.text"
        else:
            noise = graph.nodes_of("RandomNoise")
            sched = graph.nodes_of("BasicScheduler")
            guider = graph.nodes_of("BasicGuider")
            if len(noise) != 1 or len(sched) != 1 or len(guider) != 1:
                raise ValueError(
                    "cannot tell which sampler to bind (none or several): pass a WorkflowMapping"
                )
            found.update(
                seed=f"{noise[0]}.noise_seed",
                steps=f"{sched[0]}.steps",
                strength=f"{sched[0]}.denoise",
                loras=f"{guider[0]}.model",
            )
            found["loras"] = f"{guider[0]}.model"
            positive = _follow(graph, guider[0], "conditioning")
        guidance = None
        if positive and graph.node(positive)["class_type"] == "FluxGuidance":
            guidance = positive
            positive = _follow(graph, positive, "conditioning")
        if not positive or graph.node(positive)["class_type"] != "CLIPTextEncode":
            raise ValueError("cannot find the prompt's CLIPTextEncode node: pass a WorkflowMapping")
        found["prompt"] = f"{positive}.text"
        if guidance:
            found["guidance"] = f"{guidance}.guidance"
        latents = graph.nodes_of("EmptySD3LatentImage") + graph.nodes_of("EmptyLatentImage")
        sizes = list(latents) + graph.nodes_of("ModelSamplingFlux")
        sizes += graph.nodes_of("ImageScale")
        if sizes:
            found["width"] = tuple(f"{n}.width" for n in sizes)
            found["height"] = tuple(f"{n}.height" for n in sizes)
        loads = graph.nodes_of("LoadImage")
        if len(loads) == 1 and not graph.nodes_of("ApplyFluxIPAdapter"):
            found["image"] = f"{loads[0]}.image"
        for apply in graph.nodes_of("ApplyFluxIPAdapter"):
            face = _follow(graph, apply, "image")
            if face and graph.node(face)["class_type"] == "LoadImage":
                found["reference_image"] = f"{face}.image"
                found["reference_strength"] = f"{apply}.ip_scale"
        if not found.get("image") and "strength" in found and not loads:
            found.pop("strength")
        saves = graph.nodes_of("SaveImage")
        if len(saves) == 1:
            found["filename_prefix"] = f"{saves[0]}.filename_prefix"
            found["output"] = saves[0]
        return cls(**found)


def _follow(graph: Graph, node_id: str, name: str) -> str | None:
    value = graph.node(node_id)["inputs"].get(name)
    if isinstance(value, list) and len(value) == 2 and str(value[0]) in graph:
        return str(value[0])
    return None


def _set(graph: Graph, path: str, value: Any) -> None:
    node_id, sep, name = path.partition(".")
    if not sep or not name:
        raise ValueError(f"mapping path {path!r} is not 'node id.input name'")
    if node_id not in graph:
        raise ValueError(f"mapping path {path!r}: the graph has no node {node_id!r}")
    graph.set_input(node_id, name, value)


def bind_workflow(graph: Graph, mapping: WorkflowMapping, values: Mapping[str, Any]) -> Graph:
    """A copy of ``graph`` with ``values`` (request field -> value) written where ``mapping`` says.

    ``values["loras"]`` is a sequence of ``(file name, strength)``.

    Raises:
        ValueError: a value is given for a field the mapping does not place.
    """
    bound = graph.copy()
    for name, value in values.items():
        if value is None or name == "loras":
            continue
        paths = _paths(getattr(mapping, name, None))
        if not paths:
            raise ValueError(f"the workflow mapping does not say where {name!r} goes")
        for path in paths:
            _set(bound, path, value)
    loras = values.get("loras") or ()
    if loras:
        if not mapping.loras:
            raise ValueError("the workflow mapping does not say where LoRAs go (loras=)")
        splice_loras(bound, mapping.loras, loras)
    return bound


def splice_loras(graph: Graph, target: str, loras: Sequence[tuple[str, float]]) -> None:
    """Insert one ``LoraLoaderModelOnly`` per LoRA between ``target``'s source and its users.

    Every input linked to the same model output as ``target`` is rewired to the chain's end, so
    a graph whose model feeds several nodes (sampler, scheduler, ``ModelSamplingFlux``) gets the
    LoRAs everywhere.
    """
    node_id, _, name = target.partition(".")
    link = graph.node(node_id)["inputs"].get(name)
    if not (isinstance(link, list) and len(link) == 2):
        raise ValueError(f"mapping loras={target!r}: that input is not a link to a model")
    source = [str(link[0]), link[1]]
    users = [
        (nid, inp)
        for nid, inp in graph.links_to(source[0])
        if graph.node(nid)["inputs"][inp][1] == source[1]
    ]
    current: Any = source
    for filename, strength in loras:
        ref = graph.add(
            "LoraLoaderModelOnly", model=current, lora_name=filename, strength_model=strength
        )
        current = ref.out()
    for nid, inp in users:
        graph.set_input(nid, inp, current)


ImageEncoding = Literal["data_uri", "base64"]


@dataclass(frozen=True)
class JsonEndpoint:
    """A one-shot JSON endpoint: request fields go to body keys, the answer holds the image.

    Attributes:
        path: the URL path, appended to the backend's ``base_url``.
        mapping: request field -> body key (dots for nesting).
        defaults: body keys sent as given (e.g. ``{"negative_prompt": ""}``).
        image_encoding: how images are sent (``data_uri`` or bare ``base64``).
        result: the answer's key that holds the image(s) (base64, data URIs or URLs); None
            tries ``image``, ``images``, ``output``, ``data``; an ``image/*`` answer is the image.
    """

    path: str = "/flux-ipadapter-faceid"
    mapping: Mapping[str, str] = field(
        default_factory=lambda: {
            "prompt": "prompt",
            "reference_image": "reference_image",
            "width": "width",
            "height": "height",
            "steps": "steps",
            "guidance": "cfg",
            "seed": "seed",
            "reference_strength": "ipadapter_strength",
        }
    )
    defaults: Mapping[str, Any] = field(default_factory=dict)
    image_encoding: ImageEncoding = "data_uri"
    result: str | None = None

    def bound(self) -> list[str]:
        return list(self.mapping)


FLUX_IPADAPTER_FACEID = JsonEndpoint()
"""``POST /flux-ipadapter-faceid`` with ``prompt``, ``reference_image`` (a data URI),
``width``, ``height``, ``steps``, ``cfg`` (FLUX guidance), ``seed``, ``ipadapter_strength``."""


def bind_json(endpoint: JsonEndpoint, values: Mapping[str, Any]) -> dict[str, Any]:
    """The request body for ``endpoint``.

    Raises:
        ValueError: a value is given for a field the endpoint does not take.
    """
    body: dict[str, Any] = {}
    for key, value in endpoint.defaults.items():
        _put(body, key, value)
    for name, value in values.items():
        if value is None or (name == "loras" and not value):
            continue
        target = endpoint.mapping.get(name)
        if target is None:
            raise ValueError(f"the endpoint {endpoint.path} takes no {name!r}")
        _put(body, target, value)
    return body


def _put(body: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    for part in parts[:-1]:
        body = body.setdefault(part, {})
    body[parts[-1]] = value


def mapping_fields() -> tuple[str, ...]:
    return tuple(f.name for f in fields(WorkflowMapping))
