"""Keeping a request's credentials out of logs, errors and results."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["MASK", "Redactor"]

MASK = "[redacted]"


class _Filter(logging.Filter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose args do not fit its format: leave it to logging
            return True
        clean = self.redactor.scrub(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redactor.scrub(
                logging.Formatter().formatException(record.exc_info)
            )
            record.exc_info = None
        return True


class Redactor:
    """Replaces every occurrence of a request's credentials with :data:`MASK`.

    Example:
        ```python
        redactor = Redactor(["hf_secret"])
        redactor.scrub("401 for token hf_secret")     # '401 for token [redacted]'
        ```
    """

    def __init__(self, secrets: Iterable[str], *, key_ids: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole; very short values
        # (an empty or 1-3 character "token") would mask ordinary text and are not secrets.
        self.key_ids = {s for s in key_ids if len(s) >= 4}
        self.secrets = sorted(
            {s for s in secrets if len(s) >= 4} | self.key_ids, key=len, reverse=True
        )

    def scrub(self, text: str, *, keep_key_ids: bool = False) -> str:
        for secret in self.secrets:
            if not (keep_key_ids and secret in self.key_ids):
                text = text.replace(secret, MASK)
        return text

    def scrub_value(self, value: Any, *, key: str | None = None) -> Any:
        """A JSON-like value with every string scrubbed.

        An output ``url`` keeps an S3 access key *id* (never a secret key): a SigV4 presigned URL
        carries it by design (``X-Amz-Credential``) and would not work without it.
        """
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.scrub(value, keep_key_ids=key == "url")
        if isinstance(value, dict):
            return {name: self.scrub_value(item, key=name) for name, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub_value(item) for item in value]
        return value

    @contextmanager
    def logging(self) -> Iterator[None]:
        """Scrub every log record emitted (through any handler) while the job runs."""
        if not self.secrets:
            yield
            return
        log_filter = _Filter(self)
        root = logging.getLogger()
        handlers = list(root.handlers)
        for handler in handlers:
            handler.addFilter(log_filter)
        factory = logging.getLogRecordFactory()

        def scrubbed(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = factory(*args, **kwargs)
            log_filter.filter(record)
            return record

        logging.setLogRecordFactory(scrubbed)
        try:
            yield
        finally:
            logging.setLogRecordFactory(factory)
            for handler in handlers:
                handler.removeFilter(log_filter)
