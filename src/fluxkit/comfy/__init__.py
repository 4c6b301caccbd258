"""ComfyUI workflows in typed Python: build FLUX graphs, bind your own, validate before sending.

```python
from fluxkit.comfy import FluxModels, LoraSpec, flux_graph, validate_graph

wf = flux_graph("a red fox", width=1024, height=768, steps=28, seed=7,
                loras=[LoraSpec("fox.safetensors", 0.8)])
wf.graph.to_api()                    # the body of POST /prompt {"prompt": ...}
```

* builders: `flux_graph` (and `flux_txt2img`, `flux_img2img`,
  `flux_ipadapter`), `Graph` for anything else;
* your own graph: `WorkflowMapping` says which node inputs take fluxkit's request;
  `JsonEndpoint` does the same for one-shot JSON services;
* `validate_graph` / `check_graph`: the server's verdicts from its ``/object_info``,
  without spending a queue slot.

Pure Python: nothing here sends a request. The ``comfyui`` backend does, see
``fluxkit.backends.comfyui``.
"""

from fluxkit.comfy._errors import (
    ComfyExecutionError,
    ModelFileMissingError,
    NodeProblem,
    WorkflowRejectedError,
    WorkflowValidationError,
    XLabsIPAdapterIncompatibleError,
)
from fluxkit.comfy._flux import (
    DualClip,
    FluxModels,
    FluxWorkflow,
    IPAdapter,
    LoraSpec,
    SingleClip,
    flux_graph,
    flux_img2img,
    flux_ipadapter,
    flux_txt2img,
)
from fluxkit.comfy._graph import Graph, Link, NodeRef
from fluxkit.comfy._mapping import (
    FLUX_IPADAPTER_FACEID,
    JsonEndpoint,
    WorkflowMapping,
    bind_json,
    bind_workflow,
    splice_loras,
)
from fluxkit.comfy._validate import (
    MODEL_FOLDERS,
    ObjectInfo,
    check_graph,
    model_references,
    problems_from_response,
    validate_graph,
)

__all__ = [
    "FLUX_IPADAPTER_FACEID",
    "MODEL_FOLDERS",
    "ComfyExecutionError",
    "DualClip",
    "FluxModels",
    "FluxWorkflow",
    "Graph",
    "IPAdapter",
    "JsonEndpoint",
    "Link",
    "LoraSpec",
    "ModelFileMissingError",
    "NodeProblem",
    "NodeRef",
    "ObjectInfo",
    "SingleClip",
    "WorkflowMapping",
    "WorkflowRejectedError",
    "WorkflowValidationError",
    "XLabsIPAdapterIncompatibleError",
    "bind_json",
    "bind_workflow",
    "check_graph",
    "flux_graph",
    "flux_img2img",
    "flux_ipadapter",
    "flux_txt2img",
    "model_references",
    "problems_from_response",
    "splice_loras",
    "validate_graph",
]
