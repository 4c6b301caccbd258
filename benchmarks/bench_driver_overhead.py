"""Per-request cost the flow driver adds over plain httpx (target: <= 0.5 ms).

10 000 one-request flows through `run_flow` vs 10 000 plain `client.send` calls, both against
the same in-process transport, so only fluxkit's own work differs.

    python benchmarks/bench_driver_overhead.py
"""

from __future__ import annotations

import time

import httpx

from fluxkit._core import HttpRequest, send
from fluxkit._drivers import FlowContext, run_flow

N = 10_000
BODY = b'{"status": "COMPLETED"}'


def handler(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=BODY, headers={"content-type": "application/json"})


def one_request_flow() -> object:
    response = yield from send(
        HttpRequest("GET", "http://provider.test/status", retry="idempotent")
    )
    return response.json()


def main() -> None:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    for _ in range(500):  # warm up both paths
        client.get("http://provider.test/status").read()
        run_flow(one_request_flow(), client, FlowContext("bench"))

    started = time.perf_counter()
    for _ in range(N):
        # what the driver itself does per request, minus fluxkit: build, send, read, parse
        response = client.send(
            client.build_request("GET", "http://provider.test/status", timeout=60)
        )
        response.read()
        response.close()
        response.json()
    plain = time.perf_counter() - started

    context = FlowContext("bench")
    started = time.perf_counter()
    for _ in range(N):
        run_flow(one_request_flow(), client, context)
    flows = time.perf_counter() - started

    added = (flows - plain) / N * 1000
    print(f"plain httpx: {plain / N * 1000:.3f} ms/request")
    print(f"run_flow:    {flows / N * 1000:.3f} ms/request")
    print(f"added:       {added:.3f} ms/request (target <= 0.5)")


if __name__ == "__main__":
    main()
