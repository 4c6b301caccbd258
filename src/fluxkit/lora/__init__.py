"""LoRA file inspection: layout, base model, rank, alpha and targets from the header alone.

```python
from fluxkit.lora import inspect_lora

info = inspect_lora("tok.safetensors")          # or "hf://me/tok-lora/lora.safetensors"
print(info.summary())
info.check_compatible("flux-dev")               # raises InvalidRequestError if not FLUX.1
```

Only the safetensors header is read (8-byte length + JSON), so inspecting a Hub file costs one or
two HTTP ``Range`` requests. Pickle formats (``.bin``, ``.ckpt``, ``.pt``) are refused. Importing
this package needs neither torch nor huggingface_hub.
"""

from __future__ import annotations

from fluxkit.lora._family import BaseModel
from fluxkit.lora._header import PickleFormatError
from fluxkit.lora._hubfiles import DIFFUSERS_WEIGHT_NAME, choose_primary
from fluxkit.lora._info import LoRAInfo, normalise_model
from fluxkit.lora._inspect import inspect_lora
from fluxkit.lora._layout import Layout, detect_layout

__all__ = [
    "DIFFUSERS_WEIGHT_NAME",
    "BaseModel",
    "Layout",
    "LoRAInfo",
    "PickleFormatError",
    "choose_primary",
    "detect_layout",
    "inspect_lora",
    "normalise_model",
]
