"""Batches: every image once, nothing paid twice, through crashes, kills, rate limits, budgets."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import anyio
import pytest

import fluxkit
from fluxkit.batch import arun_batch, expand, load_requests, run_batch
from fluxkit.batch._journal import JOURNAL_NAME, Journal
from fluxkit.cli import main
from fluxkit.testing import FakeProviderEmulator, FalEmulator

SMALL = {"size": (256, 256)}


def index_of(out: Path) -> list[dict[str, object]]:
    lines = (out / "index.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# -- inputs -------------------------------------------------------------------------------------


def test_jsonl_and_csv_prompt_files(tmp_path: Path) -> None:
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('"a fox"\n\n{"prompt": "a lighthouse", "seed": 4, "n": 2}\n# comment\nplain\n')
    assert load_requests(jsonl) == [
        {"prompt": "a fox"},
        {"prompt": "a lighthouse", "seed": 4, "n": 2},
        {"prompt": "plain"},
    ]
    csv = tmp_path / "p.csv"
    csv.write_text('prompt,seed,steps,loras\nfox,3,8,"[[""hf://me/l"", 0.5]]"\nowl,,,\n')
    assert load_requests(csv) == [
        {"prompt": "fox", "seed": 3, "steps": 8, "loras": [["hf://me/l", 0.5]]},
        {"prompt": "owl"},
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("[1, 2]\n")
    with pytest.raises(fluxkit.InvalidRequestError, match="line 1"):
        load_requests(bad)


def test_lines_become_one_job_per_image_with_stable_keys() -> None:
    jobs = expand([{"prompt": "a", "n": 3, "seed": 10}, "a", "a"], {"size": "square"})
    assert [request["seed"] for _, _, request in jobs[:3]] == [10, 11, 12]
    assert len(jobs) == 4  # the two identical "a" lines are one job
    assert len(expand(["a", "a"], dedupe=False)) == 2
    again = expand([{"prompt": "a", "n": 3, "seed": 10}], {"size": "square"})
    assert [key for key, _, _ in again] == [key for key, _, _ in jobs[:3]]


# -- running ------------------------------------------------------------------------------------


def test_a_batch_saves_every_image_once_with_its_record(tmp_path: Path) -> None:
    emu = FakeProviderEmulator()
    with emu.generator() as gen:
        summary = run_batch(
            ["a fox", {"prompt": "an owl", "n": 2, "seed": 5}], gen, tmp_path, defaults=SMALL
        )
    assert summary.saved == 3 and summary.ok and len(emu.jobs) == 3
    entries = index_of(tmp_path)
    assert sorted(e["seed"] for e in entries if e["line"] == 2) == [5, 6]  # type: ignore[type-var]
    for entry in entries:
        (name,) = entry["files"]  # type: ignore[misc]
        record = fluxkit.read_record(tmp_path / name)
        assert record is not None and record["batch"]["key"] == entry["key"]
    # a rerun finds everything saved: nothing is sent
    with emu.generator() as gen:
        again = run_batch(
            ["a fox", {"prompt": "an owl", "n": 2, "seed": 5}], gen, tmp_path, defaults=SMALL
        )
    assert again.saved == 0 and again.skipped == 3 and len(emu.jobs) == 3


def test_async_batches_behave_the_same(tmp_path: Path) -> None:
    emu = FakeProviderEmulator()

    async def main_() -> fluxkit.batch.BatchSummary:
        async with emu.async_generator() as agen:
            return await arun_batch(["a", "b", "c"], agen, tmp_path, defaults=SMALL, concurrency=2)

    summary = anyio.run(main_)
    assert summary.saved == 3 and len(emu.jobs) == 3 and len(index_of(tmp_path)) == 3


def test_accepted_jobs_are_collected_by_id_not_resubmitted(tmp_path: Path) -> None:
    emu = FakeProviderEmulator()
    jobs = expand(["a fox"], SMALL)
    with emu.generator() as gen:
        # an earlier run submitted the job, recorded its id, then died
        first = gen.generate("a fox", size=(256, 256), seed=jobs[0][2]["seed"])
    with Journal.open(tmp_path / JOURNAL_NAME) as journal:
        journal.plan(jobs)
        journal.submitting(jobs[0][0], "fake")
        journal.submitted(jobs[0][0], first.request_ids[0])
    with emu.generator() as gen:
        summary = run_batch(["a fox"], gen, tmp_path, defaults=SMALL)
    assert summary.collected == 1 and summary.saved == 1
    assert len(emu.jobs) == 1  # nothing new was submitted
    assert index_of(tmp_path)[0]["request_ids"] == [first.request_ids[0]]


def test_a_crash_during_submission_resends_only_where_the_provider_deduplicates(
    tmp_path: Path,
) -> None:
    # fake deduplicates on the job key: the resend finds the job the dead run created
    emu = FakeProviderEmulator()
    jobs = expand(["a fox"], SMALL)
    key = jobs[0][0]
    with emu.generator() as gen:
        gen.generate("a fox", size=(256, 256), seed=jobs[0][2]["seed"], idempotency_key=key)
    with Journal.open(tmp_path / JOURNAL_NAME) as journal:
        journal.plan(jobs)
        journal.submitting(key, "fake")
    with emu.generator() as gen:
        summary = run_batch(["a fox"], gen, tmp_path, defaults=SMALL)
    assert summary.saved == 1 and len(emu.jobs) == 1

    # fal cannot deduplicate: the job is reported uncertain, never resent blindly
    fal = FalEmulator(api_key="k")
    out = tmp_path / "fal"
    with Journal.open(out / JOURNAL_NAME) as journal:
        journal.plan(jobs)
        journal.submitting(key, "fal")
    with fal.generator() as gen:
        summary = run_batch(["a fox"], gen, out, defaults=SMALL)
    assert summary.uncertain == [1] and not summary.ok and fal.jobs == {}
    with fal.generator() as gen:  # the user decides: resend
        summary = run_batch(
            ["a fox"], gen, out, defaults=SMALL, retry_failed=True, resubmit_uncertain=True
        )
    assert summary.saved == 1 and len(fal.jobs) == 1


def test_two_processes_on_one_journal_never_run_the_same_job(tmp_path: Path) -> None:
    emu = FakeProviderEmulator()
    emu.script.run_seconds = 0.02
    prompts = [f"prompt {i}" for i in range(30)]
    summaries = []

    def one() -> None:
        with emu.generator() as gen:
            summaries.append(run_batch(prompts, gen, tmp_path, defaults=SMALL, concurrency=4))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(s.saved for s in summaries) == 30
    assert len(emu.jobs) == 30 and len(index_of(tmp_path)) == 30


def test_rate_limit_storms_slow_the_batch_without_errors(tmp_path: Path) -> None:
    emu = FakeProviderEmulator()
    emu.script.fail_next(429, count=40, path=r"^/v1/generations$", retry_after=0.01)
    with emu.generator(max_retries=2) as gen:
        summary = run_batch([f"p{i}" for i in range(12)], gen, tmp_path, defaults=SMALL)
    assert summary.ok and summary.saved == 12 and len(emu.jobs) == 12


def test_an_outage_pauses_instead_of_failing(tmp_path: Path) -> None:
    emu = FakeProviderEmulator()
    emu.script.fail_next(503, count=4, path=r"^/v1/generations$")
    with emu.generator(max_retries=1) as gen:
        summary = run_batch(["a", "b"], gen, tmp_path, defaults=SMALL, concurrency=1)
    assert summary.ok and summary.saved == 2


def test_a_budget_stops_the_batch_before_any_spend(tmp_path: Path) -> None:
    emu = FalEmulator(api_key="k")
    with emu.generator() as gen, pytest.raises(fluxkit.BudgetExceeded):
        run_batch(["a", "b", "c"], gen, tmp_path, defaults={"size": (1024, 1024)}, max_cost=0.06)
    assert emu.log == []


def test_a_line_the_backend_cannot_run_is_named_before_anything_is_sent(tmp_path: Path) -> None:
    emu = FalEmulator(api_key="k")
    with emu.generator() as gen, pytest.raises(fluxkit.InvalidRequestError, match="line 2"):
        run_batch(["ok", {"prompt": "bad", "steps": 500}], gen, tmp_path)
    assert emu.log == []


def test_the_cli_runs_and_resumes_a_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('"a fox"\n{"prompt": "an owl", "seed": 2}\n')
    out = tmp_path / "out"
    assert (
        main(
            [
                "batch",
                str(prompts),
                "--backend",
                "fake",
                "--size",
                "256x256",
                "-o",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert "2 saved" in capsys.readouterr().out
    assert (
        main(["batch", "--resume", str(out), "--backend", "fake", "--size", "256x256", "--quiet"])
        == 0
    )
    assert "0 saved, 2 already done" in capsys.readouterr().out
    assert main(["batch", str(prompts), "--backend", "fake", "--dry-run"]) == 0
    assert "2 job(s) valid" in capsys.readouterr().out
    assert main(["batch", "--resume", str(tmp_path / "nothing")]) == 2


# -- kill -9, resume, repeat --------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import sys
    import fluxkit
    from fluxkit.batch import load_requests, run_batch

    url, prompts, out = sys.argv[1:4]
    with fluxkit.Generator("fake", base_url=url, timeout=60) as gen:
        print("READY", flush=True)
        summary = run_batch(load_requests(prompts), gen, out, concurrency=16)
    print("SUMMARY", summary.saved, summary.collected, len(summary.failed), len(summary.uncertain))
    """
)


ATTEMPTS = 9
"""Runs of the batch: each killed (SIGKILL) at a random moment, then one to the end."""


@pytest.mark.slow
def test_kill_9_at_random_points_loses_nothing_and_pays_nothing_twice(tmp_path: Path) -> None:
    jobs = 200
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "\n".join(
            json.dumps({"prompt": f"job {i}", "seed": i, "size": [256, 256]}) for i in range(jobs)
        )
    )
    out = tmp_path / "out"
    emu = FakeProviderEmulator()
    emu.script.run_seconds = 0.05
    rng = random.Random(7)
    kills = 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with emu.serve() as url:
        for attempt in range(ATTEMPTS):
            process = subprocess.Popen(
                [sys.executable, "-c", WORKER, url, str(prompts), str(out)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
            assert process.stdout is not None and process.stderr is not None
            process.stdout.readline()  # READY: imports done, the batch starts now
            if attempt < ATTEMPTS - 1:
                try:
                    process.wait(timeout=rng.uniform(0.2, 1.5))
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGKILL)  # kill -9, mid-batch
                    process.wait()
                    kills += 1
                    continue
            stdout = process.stdout.read().decode()
            process.wait()
            assert process.returncode == 0, process.stderr.read().decode()
            if "SUMMARY" in stdout:
                break
    assert kills >= 1, "the batch finished before any kill: make it longer"
    entries = index_of(out)
    keys = [entry["key"] for entry in entries]
    images = sorted(p.name for p in out.iterdir() if p.suffix == ".png")
    assert len(set(keys)) == jobs and len(images) == jobs  # every image exactly once on disk
    # never paid twice: one provider job per batch job (the key is the idempotency key)
    assert len(emu.jobs) == jobs
    # no paid result lost: every job the provider ran is in the index
    collected = {rid for entry in entries for rid in entry["request_ids"]}  # type: ignore[attr-defined]
    assert collected == set(emu.jobs)
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


def test_comfyui_batches_collect_by_prompt_id_and_never_queue_twice(tmp_path: Path) -> None:
    from fluxkit.testing import ComfyUIEmulator

    emu = ComfyUIEmulator()
    defaults = {"size": (256, 256), "steps": 2}
    jobs = expand(["a fox", "an owl"], defaults)
    with emu.generator() as gen:
        # an earlier run queued the first job (prompt id derived from the job key), then died
        gen.generate(
            "a fox", idempotency_key=jobs[0][0], seed=jobs[0][2]["seed"], size=(256, 256), steps=2
        )
    assert len(emu.history) == 1
    with Journal.open(tmp_path / JOURNAL_NAME) as journal:
        journal.plan(jobs)
        journal.submitting(jobs[0][0], "comfyui")
    with emu.generator() as gen:
        summary = run_batch(["a fox", "an owl"], gen, tmp_path, defaults=defaults)
    assert summary.ok and summary.saved == 2
    assert len(emu.history) == 2  # the fox was found on the server, not queued again
    assert len(emu.requests(r"^/prompt$", method="POST")) == 2


def test_runpod_batches_collect_accepted_jobs_by_id(tmp_path: Path) -> None:
    from fluxkit.testing import RunPodEmulator

    emu = RunPodEmulator()
    defaults = {"size": (256, 256)}
    jobs = expand(["a fox", "an owl", "a lighthouse"], defaults)
    with emu.generator() as gen:
        first = gen.generate("a fox", seed=jobs[0][2]["seed"], size=(256, 256))
    with Journal.open(tmp_path / JOURNAL_NAME) as journal:
        journal.plan(jobs)
        journal.submitting(jobs[0][0], "runpod")
        journal.submitted(jobs[0][0], first.request_ids[0])
    with emu.generator() as gen:
        summary = run_batch(["a fox", "an owl", "a lighthouse"], gen, tmp_path, defaults=defaults)
    assert summary.ok and summary.saved == 3 and summary.collected == 1
    assert len(emu.jobs) == 3  # one per batch job: the fox was collected, not rerun
