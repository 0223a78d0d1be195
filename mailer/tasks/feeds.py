"""Celery tasks: polling feed sources. Beat runs ``poll_feeds`` every minute; it queues one
``ingest_source`` per source that is due. A failing feed is recorded on its Source by the
service and polled again later with backoff, so these tasks do not retry."""

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from mailer.polling import due_feed_ids, ensure_site_feed, poll_source


def _queued_key(source_id: int) -> str:
    return f"feeds:queued:{source_id}"


@shared_task(name="mailer.tasks.feeds.poll_feeds", ignore_result=True)
def poll_feeds() -> int:
    """Queue a poll of every due feed source; returns how many were queued. A source already
    waiting in the queue is not queued again (a busy worker does not pile up polls)."""
    ensure_site_feed()
    queued = 0
    for source_id in due_feed_ids():
        if cache.add(_queued_key(source_id), 1, timeout=max(settings.FEED_POLL_MINUTES, 1) * 60):
            ingest_source.delay(source_id)
            queued += 1
    return queued


@shared_task(name="mailer.tasks.feeds.ingest_source", ignore_result=True)
def ingest_source(source_id: int, force: bool = False) -> str:
    """Poll one source (fetch, parse, store); the source's lock keeps polls from overlapping."""
    try:
        return poll_source(source_id, force=force).describe()
    finally:
        cache.delete(_queued_key(source_id))
