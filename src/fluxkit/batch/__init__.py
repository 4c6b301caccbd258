"""Batches that lose nothing, and what they cost.

```python
import fluxkit
from fluxkit.batch import load_requests, run_batch

with fluxkit.Generator("fal") as gen:
    summary = run_batch(load_requests("prompts.jsonl"), gen, "out/", max_cost=5.0)
print(summary)
```

* `run_batch` / `arun_batch` — every job journalled in SQLite; rerun after a crash
  and nothing is paid twice (``fluxkit batch --resume DIR`` from the shell);
* `PriceTable` / `CostEstimate` — list prices per (backend, model) with their
  sources, estimates before any call, actual costs on results;
* `load_requests` / `expand` — JSONL/CSV prompt files to jobs.
"""

from fluxkit.batch._inputs import expand, load_requests
from fluxkit.batch._journal import Job, Journal
from fluxkit.batch._pricing import CostEstimate, Price, PriceTable
from fluxkit.batch._runner import BatchSummary, arun_batch, run_batch

__all__ = [
    "BatchSummary",
    "CostEstimate",
    "Job",
    "Journal",
    "Price",
    "PriceTable",
    "arun_batch",
    "expand",
    "load_requests",
    "run_batch",
]
