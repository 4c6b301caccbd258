"""Progress bars fed by the event stream, Step events from fal logs, the notebook grid."""

from __future__ import annotations

import io
import re

import pytest

import fluxkit
from fluxkit._events import Log, Queued, Started, Step
from fluxkit._progress import GenerationProgress, counting, wanted
from fluxkit.backends._fal._queue import StatusEvents
from fluxkit.backends._steps import step_of
from fluxkit.testing.fal import FalEmulator


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _final_text(raw: str) -> str:
    """What a terminal ends up showing: the last redraw of each line."""
    return "\n".join(part.split("\r")[-1] for part in raw.split("\n"))


def test_auto_draws_only_on_a_terminal_unless_asked() -> None:
    assert wanted(None, _Tty()) is True
    assert wanted(None, io.StringIO()) is False
    assert wanted(True, io.StringIO()) is True
    assert wanted(False, _Tty()) is False


def test_bar_follows_queue_start_and_steps() -> None:
    out = io.StringIO()
    seen: list[object] = []
    bars = GenerationProgress(file=out, forward=seen.append)
    events = [Queued(3), Queued(1), Started(), Log("warming up")]
    events += [Step(i, 4) for i in range(1, 5)]
    for event in events:
        bars(event)
    bars.close()
    text = out.getvalue()
    assert "queued #3" in text and "queued #1" in text and "running" in text
    assert re.search(r"100%\|.*\| 4/4", text)
    assert seen == events  # forwarded unchanged, in order
    assert bars.logs == ["warming up"]
    bars(Step(1, 4))  # after close: forwarded, not drawn
    assert out.getvalue() == text and len(seen) == len(events) + 1


def test_one_bar_per_job() -> None:
    out = io.StringIO()
    bars = GenerationProgress(file=out, desc="gen")
    for job in (0, 1):
        for i in (1, 2):
            bars(Step(i, 2, job=job))
    bars.close()
    text = _final_text(out.getvalue())
    assert "gen: 100%" in text and "gen #1: 100%" in text


def test_generate_progress_true_draws_and_still_forwards(
    capsys: pytest.CaptureFixture[str],
) -> None:
    events: list[object] = []
    with fluxkit.Generator("fake") as gen:
        result = gen.generate("a fox", steps=6, seed=1, on_event=events.append, progress=True)
    assert result.seeds == (1,)
    assert any(isinstance(e, Step) for e in events)
    assert re.search(r"\| 6/6", capsys.readouterr().err)


def test_library_is_silent_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    with fluxkit.Generator("fake") as gen:
        gen.generate("a fox", steps=6)
        list(gen.stream("a fox", steps=6))
    assert capsys.readouterr().err == ""


def test_stream_progress_sync_and_early_exit(capsys: pytest.CaptureFixture[str]) -> None:
    with fluxkit.Generator("fake") as gen:
        kinds = [type(e).__name__ for e in gen.stream("a fox", steps=3, progress=True)]
        assert kinds[-1] == "Completed"
        assert "3/3" in capsys.readouterr().err
        stream = gen.stream("a fox", steps=3, progress=True)
        next(iter(stream))
        stream.close()  # type: ignore[attr-defined]


async def test_async_generate_and_stream_progress(capsys: pytest.CaptureFixture[str]) -> None:
    async with fluxkit.AsyncGenerator("fake") as gen:
        result = await gen.generate("a fox", steps=5, seed=2, progress=True)
        assert "5/5" in capsys.readouterr().err
        async with gen.stream("a fox", steps=5, progress=True) as events:
            kinds = [type(event).__name__ async for event in events]
    assert result.seeds == (2,) and kinds[-1] == "Completed"
    assert "5/5" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (" 50%|█████     | 14/28 [00:03<00:03,  4.1it/s]", (14, 28)),
        ("100%|██████████| 28/28 [00:07<00:00,  3.9it/s]", (28, 28)),
        ("Inference step 3/28", (3, 28)),
        ("Using seed: 7", None),
        ("step 9/4", None),
        ("loaded 3/5 shards", None),
    ],
)
def test_step_lines(line: str, expected: tuple[int, int] | None) -> None:
    assert step_of(line) == expected


def test_fal_status_logs_become_steps_not_logs() -> None:
    tracker = StatusEvents("r1")
    bar = "{:3d}%|#         | {}/4 [00:00<00:00, 4.00it/s]"
    first = tracker.events(
        {"status": "IN_PROGRESS", "logs": [{"message": "boot", "timestamp": "t0"}]}
    )
    later = tracker.events(
        {
            "status": "IN_PROGRESS",
            "logs": [
                {"message": "boot", "timestamp": "t0"},
                {"message": bar.format(75, 3), "timestamp": "t1"},  # steps 1 and 2 were missed
            ],
        }
    )
    assert [type(e).__name__ for e in first] == ["Started", "Log"]
    assert [(e.i, e.total) for e in later if isinstance(e, Step)] == [(1, 4), (2, 4), (3, 4)]
    assert not any(isinstance(e, Log) for e in later)


def test_fal_emulator_steps_reach_the_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    emu = FalEmulator()
    emu.script.steps, emu.script.run_seconds = 3, 0.3
    events: list[object] = []
    with emu.generator() as gen:
        gen.generate("a fox", size=(256, 256), on_event=events.append, progress=True)
    assert [(e.i, e.total) for e in events if isinstance(e, Step)] == [(1, 3), (2, 3), (3, 3)]
    assert "3/3" in capsys.readouterr().err


def test_counting_bar() -> None:
    out = io.StringIO()
    assert list(counting(range(3), enabled=True, total=3, desc="pack", file=out)) == [0, 1, 2]
    assert "pack: 100%" in _final_text(out.getvalue())
    quiet = io.StringIO()
    assert list(counting(iter("ab"), enabled=False, file=quiet)) == ["a", "b"]
    assert quiet.getvalue() == ""


def test_result_html_grid_shows_every_seed() -> None:
    with fluxkit.Generator("fake") as gen:
        result = gen.generate("a <fox> & friends", seed=40, n=3, size=(256, 256))
    html = result._repr_html_()
    assert html.count("<img ") == 3
    assert all(f"seed {seed}" in html for seed in (40, 41, 42))
    assert "data:image/png;base64," in html
    assert "a &lt;fox&gt; &amp; friends" in html  # the prompt is escaped
