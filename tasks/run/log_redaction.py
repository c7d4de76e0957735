"""A logging filter that redacts every key this process has loaded, from every log record.

Keys are registered when a task loads them; the filter sits on every handler, Prefect's console
and API handlers included, so a key that slips into a message (a provider error quoting it, an
exception text) is removed before it reaches a terminal, a file or Prefect's database.

The filter is process-wide on purpose, the one piece of process-global state the engine keeps:
logging handlers are themselves process-global, a key loaded by one run must stay redacted from
every record any code in the process emits afterwards, and it holds keys to hide, never run state.
"""

from __future__ import annotations

import logging
import threading

from gateway.redact import scrub


class KeyRedactionFilter(logging.Filter):
    """Rewrites records whose message or traceback contains a registered key."""

    def __init__(self) -> None:
        super().__init__("byokflow-key-redaction")
        self._keys: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def register(self, key: str) -> None:
        """Redact `key` from now on."""
        with self._lock:
            self._keys = self._keys | {key}

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the record in place; never drops it."""
        keys = self._keys
        if not keys:
            return True
        message = record.getMessage()
        cleaned = scrub(message, keys)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, keys)
        return True


_FILTER = KeyRedactionFilter()


def redact_key(key: str) -> None:
    """Register a loaded key and make sure every current log handler redacts it."""
    _FILTER.register(key)
    _attach_everywhere()


def _attach_everywhere() -> None:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
