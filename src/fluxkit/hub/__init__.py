"""Publish LoRAs on the Hugging Face Hub (``pip install "fluxkit[hub]"``).

```python
from fluxkit.hub import push_lora, lora_status

lora = push_lora("tok.safetensors", "me/tok-lora", trigger_word="tok", base_model="flux-dev",
                 samples=["sample.png"])            # private repo, one commit, model card
print(lora_status("me/tok-lora"))                   # ready? primary file? why not?
```

``huggingface_hub`` is imported on first use; without it these functions raise
`MissingDependencyError` naming the ``hub`` extra. `render_model_card` is
pure string building and needs nothing.
"""

from __future__ import annotations

from fluxkit.hub._card import BASE_MODELS, CardSample, render_model_card
from fluxkit.hub._push import push_lora
from fluxkit.hub._samples import SampleLike
from fluxkit.hub._status import LoRAStatus, lora_status

__all__ = [
    "BASE_MODELS",
    "CardSample",
    "LoRAStatus",
    "SampleLike",
    "lora_status",
    "push_lora",
    "render_model_card",
]
