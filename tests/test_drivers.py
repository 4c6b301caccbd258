"""Driver semantics end to end against the fake provider: retries, deadlines, cancellation."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

import fluxkit
from fluxkit.testing import FakeProviderEmulator

SUBMIT = r"/v1/generations$"
STATUS = r"/v1/generations/[\w-]+$"


def make(emulator: FakeProviderEmulator, **options: object) -> fluxkit.Generator:
    return emulator.generator(**options)  # type: ignore[arg-type]


def submits(emulator: FakeProviderEmulator) -> int:
    return len(emulator.requests(SUBMIT, method="POST"))


class TestRetries:
    def test_rate_limit_burst_is_retried_honouring_retry_after(self) -> None:
        emulator = FakeProviderEmulator()
        emulator.script.fail_next(429, count=2, path=SUBMIT, retry_after=0.2)
        events: list[object] = []
        started = time.monotonic()
        with make(emulator) as generator:
            result = generator.generate("fox", size="square", seed=1, on_event=events.append)
        elapsed = time.monotonic() - started
        assert len(result.images) == 1
        assert submits(emulator) == 3
        retries = [e for e in events if isinstance(e, fluxkit.Retrying)]
        assert [(r.attempt, r.delay, r.reason) for r in retries] == [
            (1, 0.2, "HTTP 429"),
            (2, 0.2, "HTTP 429"),
        ]
        assert elapsed >= 0.4

    def test_retry_after_ms_is_honoured(self) -> None:
        emulator = FakeProviderEmulator()
        emulator.script.fail_next(503, path=SUBMIT, retry_after_ms=30)
        events: list[object] = []
        with make(emulator) as generator:
            generator.generate("fox", size="square", seed=1, on_event=events.append)
        assert [e.delay for e in events if isinstance(e, fluxkit.Retrying)] == [0.03]

    def test_rate_limit_that_outlasts_retries_raises_with_retry_after(self) -> None:
        emulator = FakeProviderEmulator()
        emulator.script.fail_next(429, count=10, path=SUBMIT, retry_after=0.01)
        with (
            make(emulator, max_retries=2) as generator,
            pytest.raises(fluxkit.RateLimitError) as info,
        ):
            generator.generate("fox", size="square")
        assert info.value.retry_after == 0.01 and info.value.status_code == 429
        assert submits(emulator) == 3

    def test_a_deduplicated_submit_is_resent_after_a_502_and_makes_one_job(self) -> None:
        # The fake provider deduplicates on Idempotency-Key: the resend finds the first job.
        emulator = FakeProviderEmulator()
        emulator.script.fail_after_accept(502, path=SUBMIT)
        with make(emulator) as generator:
            result = generator.generate("fox", size="square", seed=4)
        assert result.images[0].seed == 4
        assert submits(emulator) == 2 and len(emulator.jobs) == 1

    def test_after_acceptance_failures_are_polled_through_never_resubmitted(self) -> None:
        emulator = FakeProviderEmulator()
        emulator.script.fail_next(500, count=2, path=STATUS)
        with make(emulator) as generator:
            result = generator.generate("fox", size="square", seed=3)
        assert result.images[0].seed == 3
        assert submits(emulator) == 1

    @pytest.mark.parametrize(
        ("status", "error"),
        [
            (401, fluxkit.AuthenticationError),
            (403, fluxkit.AuthenticationError),
            (422, fluxkit.ProviderRejectedError),
            (404, fluxkit.ProviderRejectedError),
        ],
    )
    def test_client_errors_are_mapped_and_not_retried(
        self, status: int, error: type[Exception]
    ) -> None:
        emulator = FakeProviderEmulator()
        emulator.script.fail_next(status, path=SUBMIT, body={"detail": "provider says no"})
        with make(emulator) as generator, pytest.raises(error) as info:
            generator.generate("fox", size="square")
        assert info.value.status_code == status  # type: ignore[attr-defined]
        assert info.value.provider_message == "provider says no"  # type: ignore[attr-defined]
        assert submits(emulator) == 1

    def test_wrong_key_is_an_authentication_error_without_the_key_in_it(self) -> None:
        emulator = FakeProviderEmulator(api_key="right-key")
        with (
            make(emulator, api_key="wrong-key-123") as generator,
            pytest.raises(fluxkit.AuthenticationError) as info,
        ):
            generator.generate("fox", size="square")
        assert "wrong-key-123" not in str(info.value) and "wrong-key-123" not in repr(generator)
        assert emulator.log[0].header("authorization") == "Bearer wrong-key-123"

    def test_job_failure_carries_logs_and_request_id(self) -> None:
        emulator = FakeProviderEmulator()
        emulator.script.fail_jobs(1, "CUDA out of memory")
        with make(emulator) as generator, pytest.raises(fluxkit.JobFailedError) as info:
            generator.generate("fox", size="square")
        assert "CUDA out of memory" in str(info.value)
        assert info.value.request_id == "fake-000001"
        assert info.value.logs

    def test_connection_refused_is_retried_then_unavailable(self) -> None:
        with fluxkit.Generator("fake", base_url="http://127.0.0.1:9", max_retries=1) as generator:
            with pytest.raises(fluxkit.ProviderUnavailableError, match="ConnectError"):
                generator.generate("fox", size="square")


class TestDeadlines:
    def test_deadline_cancels_the_job_at_the_provider(self) -> None:
        emulator = FakeProviderEmulator()
        emulator.script.queue_seconds = 30
        started = time.monotonic()
        with make(emulator) as generator, pytest.raises(fluxkit.DeadlineExceeded) as info:
            generator.generate("fox", size="square", timeout=0.3)
        assert isinstance(info.value, TimeoutError)
        assert time.monotonic() - started < 2.5
        assert info.value.cancelled and info.value.request_id == "fake-000001"
        assert emulator.cancelled == {"fake-000001"}

    def test_deadline_covers_retry_waits(self) -> None:
        emulator = FakeProviderEmulator()
        emulator.script.fail_next(429, count=5, path=SUBMIT, retry_after=5)
        started = time.monotonic()
        with make(emulator) as generator, pytest.raises(fluxkit.RateLimitError):
            generator.generate("fox", size="square", timeout=1)
        assert time.monotonic() - started < 1  # a hint longer than the time left ends at once

    async def test_async_deadline_cancels_the_job(self) -> None:
        emulator = FakeProviderEmulator()
        emulator.script.run_seconds = 30
        async with emulator.async_generator() as generator:
            with pytest.raises(fluxkit.DeadlineExceeded):
                await generator.generate("fox", size="square", timeout=0.3)
        assert emulator.cancelled == {"fake-000001"}

    async def test_cancelling_the_task_cancels_the_job(self) -> None:
        emulator = FakeProviderEmulator()
        emulator.script.run_seconds = 30
        async with emulator.async_generator() as generator:
            with anyio.move_on_after(0.3):
                await generator.generate("fox", size="square")
        assert emulator.cancelled == {"fake-000001"}

    async def test_cancelling_a_split_generation_cancels_every_job(self) -> None:
        emulator = FakeProviderEmulator()
        emulator.script.run_seconds = 30
        async with emulator.async_generator(model="flux-pro") as generator:
            with anyio.move_on_after(0.3):
                await generator.generate("fox", size="square", n=3)
        assert len(emulator.cancelled) == 3


class TestOverRealSockets:
    def test_generate_over_a_loopback_port(self) -> None:
        emulator = FakeProviderEmulator(return_urls=True)
        with emulator.serve() as url, fluxkit.Generator("fake", base_url=url) as generator:
            result = generator.generate("fox", size="square", seed=5, n=2)
        assert [image.seed for image in result.images] == [5, 6]
        assert all(image.is_loaded for image in result.images)

    async def test_async_over_a_loopback_port_with_a_rate_limit(self) -> None:
        emulator = FakeProviderEmulator()
        emulator.script.fail_next(429, path=SUBMIT, retry_after=0.01)
        with emulator.serve() as url:
            async with fluxkit.AsyncGenerator("fake", base_url=url) as generator:
                result = await generator.generate("fox", size="square", seed=5)
        assert result.images[0].seed == 5 and submits(emulator) == 2


def test_user_supplied_http_client_is_used_and_left_open() -> None:
    emulator = FakeProviderEmulator()
    client = httpx.Client(transport=emulator.transport())
    with fluxkit.Generator("fake", http_client=client) as generator:
        generator.generate("fox", size="square")
    assert not client.is_closed
    client.close()
