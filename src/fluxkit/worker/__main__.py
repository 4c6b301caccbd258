"""``python -m fluxkit.worker``: RunPod's worker loop running fluxkit's handler.

* on RunPod (``RUNPOD_WEBHOOK_GET_JOB`` set): the production loop; the base model loads before
  the first job is taken, so the cold start is paid once, not by a request;
* ``--test_input '{"input": {...}}'`` (or ``./test_input.json``): one real generation, the result
  printed as JSON on stdout; exit 0 on success, 1 on a failed job. This also works with
  ``FLUXKIT_STREAM=1``, whose generator handler runpod's own test mode would not run;
* ``--rp_serve_api``: runpod's local FastAPI server (``/run``, ``/runsync``, ``/stream``).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def main() -> None:
    # runpod logs a local job's whole input at DEBUG (its default level): keep credentials in a
    # test input out of the console unless asked for.
    os.environ.setdefault("RUNPOD_LOG_LEVEL", "INFO")
    import runpod.serverless

    from fluxkit.worker.handler import default_worker, handler, stream_handler

    worker = default_worker()
    local_test = "--test_input" in " ".join(sys.argv) or (
        not os.environ.get("RUNPOD_WEBHOOK_GET_JOB") and "--rp_serve_api" not in sys.argv
    )
    config: dict[str, Any]
    if local_test:
        # One job through runpod's own local runner, with a handler that runs its body (a
        # generator handler's would not run there) and prints the output as JSON.
        async def run_and_print(job: dict[str, Any]) -> dict[str, Any]:
            result = await worker.run(job)
            sys.stdout.write(json.dumps({"output": result}) + "\n")
            sys.stdout.flush()
            return result

        config = {"handler": run_and_print}
    elif worker.settings.stream:
        config = {"handler": stream_handler, "return_aggregate_stream": True}
    else:
        config = {"handler": handler}
    if not local_test and "--rp_serve_api" not in sys.argv:
        worker.load()  # cold start before taking a job
    runpod.serverless.start(config)


if __name__ == "__main__":
    main()
