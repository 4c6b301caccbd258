"""diffusers' and transformers' log noise is folded into fluxkit's logging, not printed."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

pytest.importorskip("diffusers")


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def folded() -> Iterator[_Keep]:
    """What reaches fluxkit's ``fluxkit.local`` logger."""
    logger = logging.getLogger("fluxkit.local")
    keep, level = _Keep(), logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.DEBUG)
    yield keep
    logger.removeHandler(keep)
    logger.setLevel(level)


def test_no_lora_keys_warning_becomes_a_fluxkit_debug_record(
    capfd: pytest.CaptureFixture[str], folded: _Keep
) -> None:
    from diffusers.utils import logging as diffusers_logging

    from fluxkit.backends._local.noise import fold_library_logs

    fold_library_logs()
    fold_library_logs()  # idempotent: one filter, one record
    noisy = diffusers_logging.get_logger("diffusers.loaders.lora_pipeline")
    noisy.warning(
        "No LoRA keys associated to CLIPTextModel found with the prefix='text_encoder'. This "
        "is safe to ignore if LoRA state dict didn't originally have any CLIPTextModel related "
        "params."
    )
    noisy.warning("the scheduler config is missing a key")

    assert capfd.readouterr().err == ""  # diffusers' own stderr handler printed nothing
    folded = [(r.name, r.levelno, r.getMessage()[:26]) for r in folded.records]
    assert folded == [
        ("fluxkit.local.diffusers", logging.DEBUG, "No LoRA keys associated to"),
        ("fluxkit.local.diffusers", logging.WARNING, "the scheduler config is mi"),
    ]


def test_transformers_records_are_folded_too(
    capfd: pytest.CaptureFixture[str], folded: _Keep
) -> None:
    pytest.importorskip("transformers")
    from transformers.utils import logging as transformers_logging

    from fluxkit.backends._local.noise import fold_library_logs

    fold_library_logs()
    transformers_logging.get_logger("transformers.modeling_utils").warning("some weights unused")
    assert capfd.readouterr().err == ""
    assert [(r.name, r.levelno) for r in folded.records] == [
        ("fluxkit.local.transformers", logging.WARNING)
    ]
