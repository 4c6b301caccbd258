"""ComfyUI API-format graphs, built in typed Python.

An API-format graph is ``{"<node id>": {"class_type": ..., "inputs": {...}}}`` where an input is
a literal or a link ``[source_node_id, output_index]``. `Graph` builds one node at a time
and hands back `NodeRef` values whose outputs are links:

```python
from fluxkit.comfy import Graph

g = Graph()
unet = g.add("UNETLoader", unet_name="flux1-dev.safetensors", weight_dtype="default")
lora = g.add("LoraLoaderModelOnly", model=unet.out(0), lora_name="a.safetensors", strength_model=0.8)
g.to_api()["2"]["inputs"]["model"]    # ["1", 0]
```
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Graph", "Link", "NodeRef"]


@dataclass(frozen=True)
class Link:
    """Output ``index`` of node ``node``: becomes ``[node, index]`` in the API format."""

    node: str
    index: int = 0

    def to_api(self) -> list[Any]:
        return [self.node, self.index]


@dataclass(frozen=True)
class NodeRef:
    """A node added to a `Graph`."""

    id: str
    class_type: str

    def out(self, index: int = 0) -> Link:
        """The link to this node's output ``index``."""
        return Link(self.id, index)


def _encode(value: Any) -> Any:
    if isinstance(value, Link):
        return value.to_api()
    if isinstance(value, NodeRef):
        return value.out(0).to_api()
    return value


class Graph:
    """A mutable ComfyUI API-format graph with string node ids ``"1"``, ``"2"``, ...

    ``Graph.from_api(data)`` wraps an exported workflow (``File → Export (API)``) so it can be
    inspected, edited and validated like a built one.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, dict[str, Any]] = {}
        self._next = 1

    # -- building ------------------------------------------------------------------------------

    def add(
        self,
        class_type: str,
        *,
        node_id: str | None = None,
        title: str | None = None,
        **inputs: Any,
    ) -> NodeRef:
        """Add a ``class_type`` node; links may be given as `Link` or `NodeRef`."""
        if node_id is None:
            while str(self._next) in self._nodes:
                self._next += 1
            node_id = str(self._next)
            self._next += 1
        if node_id in self._nodes:
            raise ValueError(f"node id {node_id!r} is already used")
        node: dict[str, Any] = {
            "class_type": class_type,
            "inputs": {name: _encode(value) for name, value in inputs.items()},
        }
        if title:
            node["_meta"] = {"title": title}
        self._nodes[node_id] = node
        return NodeRef(node_id, class_type)

    def set_input(self, node_id: str, name: str, value: Any) -> None:
        """Set one input of an existing node (a literal, a `Link` or a `NodeRef`)."""
        self.node(node_id)["inputs"][name] = _encode(value)

    # -- reading -------------------------------------------------------------------------------

    def node(self, node_id: str) -> dict[str, Any]:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise KeyError(f"the graph has no node {node_id!r}") from None

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def nodes_of(self, class_type: str) -> list[str]:
        """Ids of the nodes of ``class_type``, in graph order."""
        return [nid for nid, node in self._nodes.items() if node.get("class_type") == class_type]

    def links_to(self, node_id: str) -> list[tuple[str, str]]:
        """``(consumer node, input name)`` for every input linked to an output of ``node_id``."""
        found = []
        for nid, node in self._nodes.items():
            for name, value in node.get("inputs", {}).items():
                if _is_link(value) and str(value[0]) == node_id:
                    found.append((nid, name))
        return found

    def to_api(self) -> dict[str, Any]:
        """A deep copy in the API format ``POST /prompt`` takes."""
        return copy.deepcopy(self._nodes)

    def copy(self) -> Graph:
        return Graph.from_api(self._nodes)

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self._nodes, indent=indent)

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | str | Path) -> Graph:
        """Wrap an API-format graph: a mapping, a JSON string, or a path to a ``.json`` file.

        Raises:
            ValueError: the data is not an API-format graph (a UI-format export, with
                ``nodes``/``links`` lists, must be exported again with "Export (API)").
        """
        if isinstance(data, Path) or (isinstance(data, str) and not data.lstrip().startswith("{")):
            data = json.loads(Path(data).read_text())
        elif isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, Mapping):
            raise ValueError("an API-format graph is a JSON object of nodes")
        if "nodes" in data and "links" in data:
            raise ValueError(
                "this is a UI-format workflow (nodes/links lists); export it with "
                "'Export (API)' in ComfyUI to get the API format"
            )
        graph = cls()
        for node_id, node in data.items():
            if not isinstance(node, Mapping) or "class_type" not in node:
                raise ValueError(f"node {node_id!r} has no class_type: not an API-format graph")
            graph._nodes[str(node_id)] = copy.deepcopy(dict(node))
            graph._nodes[str(node_id)].setdefault("inputs", {})
        return graph


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )
