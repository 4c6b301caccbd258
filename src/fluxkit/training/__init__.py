"""Train FLUX LoRAs on fal, Replicate or this machine, with one job model.

```python
from fluxkit.training import Trainer

trainer = Trainer("fal")                                       # or "replicate", "local"
job = trainer.train("photos/", trigger_word="tok", steps=1000, max_cost=3.0, push="me/tok-lora")
lora = job.wait()                      # fluxkit.LoRA: downloaded, inspected, kept, pushed
```

Hosted trainings are resumable: a JSON handle beside the dataset names the provider's job, so
``Trainer("fal").resume("photos.fluxkit-train-fal.json")`` (or training the same dataset again)
follows the running job instead of paying for a second one. Importing this package needs
neither torch nor httpx's providers: the local loop imports diffusers and peft when it runs.
"""

from __future__ import annotations

from fluxkit.training._export import export_ai_toolkit, export_kohya
from fluxkit.training._library import LoRALibrary
from fluxkit.training._local import LocalTrainingConfig, LocalTrainingResult, train_local
from fluxkit.training._model import (
    StatusChanged,
    TrainingHandle,
    TrainingSnapshot,
    TrainingStatus,
    TrainingStep,
    handle_path_for,
)
from fluxkit.training._pricing import estimate_training
from fluxkit.training._trainer import AsyncTrainer, AsyncTrainingJob, Trainer, TrainingJob

__all__ = [
    "AsyncTrainer",
    "AsyncTrainingJob",
    "LoRALibrary",
    "LocalTrainingConfig",
    "LocalTrainingResult",
    "StatusChanged",
    "Trainer",
    "TrainingHandle",
    "TrainingJob",
    "TrainingSnapshot",
    "TrainingStatus",
    "TrainingStep",
    "estimate_training",
    "export_ai_toolkit",
    "export_kohya",
    "handle_path_for",
    "train_local",
]
