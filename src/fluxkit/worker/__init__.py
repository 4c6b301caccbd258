"""fluxkit's RunPod serverless FLUX worker (extra ``fluxkit[worker]``).

Run it with ``python -m fluxkit.worker`` (RunPod's worker loop with fluxkit's handler), or
try it locally with ``python -m fluxkit.worker --test_input '{"input": {"prompt": "a fox"}}'``.
Configuration is by environment variables: :data:`fluxkit.worker.settings.ENV_VARS`.

Importing this package is light: the runpod package, torch and diffusers are imported only by the
entry point and when the model loads.
"""

from fluxkit.worker._limits import WorkerLimits
from fluxkit.worker.handler import Worker, default_worker, handler, stream_handler
from fluxkit.worker.schema import WorkerInput, WorkerInputError, parse_input
from fluxkit.worker.settings import ENV_VARS, WorkerSettings

__all__ = [
    "ENV_VARS",
    "Worker",
    "WorkerInput",
    "WorkerInputError",
    "WorkerLimits",
    "WorkerSettings",
    "default_worker",
    "handler",
    "parse_input",
    "stream_handler",
]
