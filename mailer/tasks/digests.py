"""Celery tasks of editions: the beat's minute tick. Schedules live in the database, so the
tick is all beat runs; it is safe to run in several processes at once."""

import logging

from celery import shared_task

from mailer import digests

log = logging.getLogger(__name__)


@shared_task(name="mailer.tasks.digests.tick", ignore_result=True)
def tick() -> dict[str, list[int]]:
    """Make the editions of due schedules and start every due edition."""
    result = digests.tick()
    if result.made or result.skipped or result.claimed or result.requeued:
        log.info(
            "tick made=%s skipped=%s claimed=%s requeued=%s",
            result.made,
            result.skipped,
            result.claimed,
            result.requeued,
        )
    return {
        "made": result.made,
        "skipped": result.skipped,
        "claimed": result.claimed,
        "requeued": result.requeued,
    }
