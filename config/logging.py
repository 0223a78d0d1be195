"""Structured log lines: ``key=value`` pairs (or JSON), each carrying the edition and batch it
belongs to.

Code that works on an edition or a batch says so once, and every line logged inside (by any
module, Celery or Anymail included) carries the ids::

    from config.logging import log_context

    with log_context(digest_id=digest.pk, batch_id=batch.pk):
        send_batch(...)                     # every log line here has digest_id=.. batch_id=..

``log_context`` nests (inner values win, outer ones come back on exit) and is safe across
threads and asyncio tasks because it uses ``contextvars``; ``bind_log_context`` adds an id
learnt inside a block to that block. Inside a Celery task the task's name
and id are added as well. ``LOG_FORMAT=json`` in the environment switches to one JSON object per
line, for a log shipper; the default ``kv`` is easy to read and still easy to grep and parse.
"""

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("log_context", default=None)

# The fields every line has, in this order, before the context and any ``extra=``.
_STANDARD = ("ts", "level", "logger")
# Attributes every LogRecord has; anything else on a record came from ``extra=`` or a filter.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime", "context"}
)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (``digest_id``, ``batch_id``, ...) to every log line written inside the
    block, in this thread or task. ``None`` values are left out. Nesting merges; exiting restores
    the outer context exactly."""
    merged = {**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def bind_log_context(**fields: Any) -> None:
    """Add ``fields`` to the innermost ``log_context`` block, for ids learnt inside it (a batch
    task knows its batch id at once and its edition only after loading the batch). Outside any
    block it does nothing, so nothing can leak into the next task a worker runs."""
    current = _context.get()
    if current is not None:
        current.update({k: v for k, v in fields.items() if v is not None})


def current_context() -> dict[str, Any]:
    """The fields ``log_context`` has set here (a copy)."""
    return dict(_context.get() or {})


def _celery_task_fields() -> dict[str, Any]:
    try:
        from celery._state import get_current_task
    except ImportError:  # pragma: no cover - celery is a requirement, but logging must not fail
        return {}
    task = get_current_task()
    if task is None or task.request.id is None:
        return {}
    return {"task": task.name, "task_id": task.request.id}


class ContextFilter(logging.Filter):
    """Puts the ``log_context`` fields (and the running Celery task) on each record as
    ``record.context``; the formatters below write them out."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _celery_task_fields()
        context.update(_context.get() or {})
        record.context = context
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
    }
    fields.update(getattr(record, "context", None) or {})
    for key, value in vars(record).items():
        if key not in _RECORD_ATTRS and not key.startswith("_"):
            fields[key] = value
    fields["msg"] = record.getMessage()
    return fields


def _kv_value(value: Any) -> str:
    text = str(value)
    if text and not any(ch in text for ch in ' "=\n\r\t\\'):
        return text
    # Quoted with JSON escaping, so a message can never forge another key or another line.
    return json.dumps(text, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=INFO logger=mailer.sending digest_id=7 batch_id=31 msg="batch sent"``"""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        line = " ".join(f"{key}={_kv_value(value)}" for key, value in fields.items())
        if record.exc_info:
            line += " exc=" + _kv_value(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, same fields as ``KeyValueFormatter``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return json.dumps(fields, default=str, ensure_ascii=False)


def logging_config(*, level: str = "INFO", fmt: str = "kv") -> dict:
    """The ``LOGGING`` setting: everything to stderr through the context filter."""
    if fmt not in ("kv", "json"):
        raise ValueError(f"LOG_FORMAT must be 'kv' or 'json', got {fmt!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "config.logging.ContextFilter"}},
        "formatters": {
            "kv": {"()": "config.logging.KeyValueFormatter"},
            "json": {"()": "config.logging.JsonFormatter"},
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": fmt, "filters": ["context"]},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            # Celery's own loggers propagate to the root handler (the worker does not install its own).
            "celery": {"level": level},
        },
    }
