"""Imports checked in the admin and run by a worker, with their progress in Redis.

The admin checks a file (a dry run), keeps it in the cache under a key tied to the editor, and
when the editor confirms, a large file is imported by ``run_checked_import`` on a worker while
the page shows its progress from ``progress(key)``. The import itself is all or nothing, so a
worker that dies mid-way leaves nothing behind and the redelivered task simply runs it again.
"""

import io
from typing import Any

from celery import shared_task
from django.core.cache import cache

from subscribers.imports import ImportRefused, import_subscribers

CHECKED_FILE_SECONDS = 30 * 60
PROGRESS_SECONDS = 2 * 3600


def stash(key: str, *, content: bytes, basis: str, wording: str, name: str, rows: int) -> None:
    """Keep a checked file until the editor confirms (or ``CHECKED_FILE_SECONDS`` pass)."""
    cache.set(
        key,
        {"content": content, "basis": basis, "wording": wording, "name": name, "rows": rows},
        CHECKED_FILE_SECONDS,
    )


def checked(key: str) -> dict[str, Any] | None:
    return cache.get(key)


def progress(key: str) -> dict[str, Any] | None:
    """``{"state": "queued"|"running"|"done"|"failed", "rows", "total", "summary"}`` or None."""
    return cache.get(f"{key}:progress")


def _set_progress(key: str, **values: Any) -> None:
    cache.set(f"{key}:progress", values, PROGRESS_SECONDS)


def queue(key: str) -> bool:
    """Queue the import of the checked file under ``key``; False when it is no longer waiting.
    Queuing twice runs it once (the second finds the progress already there)."""
    found = checked(key)
    if found is None or not cache.add(
        f"{key}:progress",
        {"state": "queued", "rows": 0, "total": found["rows"], "summary": ""},
        PROGRESS_SECONDS,
    ):
        return False
    run_checked_import.delay(key)
    return True


def run(key: str) -> dict[str, Any]:
    """Import the checked file under ``key`` now, recording progress; returns the final progress."""
    found = checked(key)
    if found is None:
        _set_progress(
            key,
            state="failed",
            rows=0,
            total=0,
            summary="The checked file was no longer waiting; upload it again.",
        )
        return progress(key)
    total = found["rows"]

    def report_progress(rows: int) -> None:
        _set_progress(key, state="running", rows=rows, total=total, summary="")

    try:
        report = import_subscribers(
            io.BytesIO(found["content"]),
            basis=found["basis"],
            wording=found["wording"],
            progress=report_progress,
        )
    except ImportRefused as exc:
        _set_progress(key, state="failed", rows=0, total=total, summary=str(exc))
        return progress(key)
    state = "done" if report.committed else "failed"
    _set_progress(
        key, state=state, rows=report.rows, total=total, summary=f"{report.summary()} (file: {found['name']})"
    )
    if report.committed:
        cache.delete(key)
    return progress(key)


@shared_task
def run_checked_import(key: str) -> str:
    return run(key)["state"]
