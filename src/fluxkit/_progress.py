"""Progress bars (tqdm) fed by fluxkit's event stream, and a counting bar for loops.

``tqdm.auto`` draws a widget in Jupyter (when ``ipywidgets`` is installed) and a text bar in a
terminal. Bars are opt-in in the library (``progress=True``) and on by default in the CLI only
when stderr is a terminal (`wanted`): a log file or CI output never fills with ``\\r``
redraws unless asked.

A generation draws one bar per provider call (``job``): its description follows the job's life
(``queued #3`` → ``running`` → ``retrying in 2.0s``), and its count follows the denoising steps
once the backend reports them (``Step`` events: fal and Replicate logs, the fake provider, the
local pipeline).
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, TypeVar

from fluxkit._events import Completed, Event, Log, Queued, Retrying, Started, Step

__all__ = ["GenerationProgress", "counting", "tqdm_class", "wanted"]

T = TypeVar("T")


def wanted(progress: bool | None, file: IO[str] | None = None) -> bool:
    """Whether to draw: ``True``/``False`` as asked; ``None`` (auto) only on a terminal."""
    if progress is not None:
        return bool(progress)
    stream = file if file is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (ValueError, OSError):  # a closed or detached stream
        return False


def tqdm_class() -> Any:
    """``tqdm.auto.tqdm``, without the warning it prints in a notebook lacking ipywidgets
    (it then falls back to a text bar, which Jupyter shows fine)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm
    return tqdm


class GenerationProgress:
    """An ``on_event`` handler that draws a generation's events as tqdm bars.

    Thread-safe (the sync generator reports events from worker threads). Events are forwarded
    to ``forward`` (the caller's own ``on_event``) after drawing. ``close()`` is idempotent and
    also runs on ``Completed``.

    Example:
        ```python
        import io

        import fluxkit
        from fluxkit._progress import GenerationProgress

        bars = GenerationProgress(file=io.StringIO())
        fluxkit.Generator("fake").generate("a fox", steps=4, on_event=bars)
        ```
    """

    def __init__(
        self,
        *,
        forward: Callable[[Event], None] | None = None,
        file: IO[str] | None = None,
        desc: str = "fluxkit",
        leave: bool = True,
    ) -> None:
        self._forward = forward
        self._file = file
        self._desc = desc
        self._leave = leave
        self._bars: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.logs: list[str] = []

    def _bar(self, job: int) -> Any:
        bar = self._bars.get(job)
        if bar is None:
            label = self._desc if not self._bars and job == 0 else f"{self._desc} #{job}"
            bar = tqdm_class()(
                total=None,
                desc=label,
                unit="step",
                file=self._file,
                leave=self._leave,
                position=len(self._bars),
                dynamic_ncols=True,
            )
            bar.fluxkit_label = label
            self._bars[job] = bar
        return bar

    def _status(self, job: int, text: str) -> None:
        bar = self._bar(job)
        bar.set_description_str(f"{bar.fluxkit_label} ({text})")

    def __call__(self, event: Event) -> None:
        with self._lock:
            if not self._closed:
                self._draw(event)
        if self._forward is not None:
            self._forward(event)

    def _draw(self, event: Event) -> None:
        if isinstance(event, Queued):
            self._status(
                event.job, "queued" if event.position is None else f"queued #{event.position}"
            )
        elif isinstance(event, Started):
            self._status(event.job, "running")
        elif isinstance(event, Retrying):
            self._status(event.job, f"retrying in {event.delay:.1f}s")
        elif isinstance(event, Step):
            bar = self._bar(event.job)
            if bar.total != event.total:
                bar.reset(total=event.total)
                bar.set_description_str(bar.fluxkit_label)
            if event.i > bar.n:
                bar.update(event.i - bar.n)
        elif isinstance(event, Log):
            self.logs.append(event.message)
        elif isinstance(event, Completed):
            self._close_bars()

    def _close_bars(self) -> None:
        self._closed = True
        for bar in self._bars.values():
            bar.close()

    def close(self) -> None:
        """Close every bar (early exit, an error); later events are only forwarded."""
        with self._lock:
            if not self._closed:
                self._close_bars()


def attach(
    progress: bool, on_event: Callable[[Event], None] | None
) -> tuple[Callable[[Event], None] | None, GenerationProgress | None]:
    """The handler to pass down, and the bars to close afterwards (None when not drawing)."""
    if not progress:
        return on_event, None
    bars = GenerationProgress(forward=on_event)
    return bars, bars


def counting(
    items: Iterable[T],
    *,
    enabled: bool,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    file: IO[str] | None = None,
) -> Iterator[T]:
    """``items`` unchanged, drawing a counting bar while they are consumed when ``enabled``."""
    if not enabled:
        yield from items
        return
    bar = tqdm_class()(total=total, desc=desc, unit=unit, file=file, dynamic_ncols=True)
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()
