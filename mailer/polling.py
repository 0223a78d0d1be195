"""Polling feed sources: which are due, and one poll of one source (fetch, parse, ingest, record).

A poll never raises for a bad feed: what went wrong is recorded on the Source (``last_error``,
``failure_count``, ``last_polled_at``) for editors to see, and a failing source is polled less
often (the interval doubles per consecutive failure, up to ``MAX_BACKOFF``). A Redis lock per
source makes sure one source is never fetched twice at once, whoever asks (beat, the admin's
"poll now", the management command).
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import redis
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from config import redis_state
from mailer.articles import IngestResult, ingest_entries
from mailer.feeds import FeedError, fetch_feed, parse_feed
from mailer.models import Source

logger = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=6)
ERROR_MAX = 2000


class PollOutcome(StrEnum):
    FETCHED = "fetched"
    NOT_MODIFIED = "not modified"
    FAILED = "failed"
    BUSY = "busy"  # another process is polling this source right now
    NOT_DUE = "not due"
    GONE = "gone"  # deleted, inactive, or not a feed


@dataclass(frozen=True)
class PollResult:
    outcome: PollOutcome
    ingest: IngestResult | None = None
    error: str = ""

    def describe(self) -> str:
        if self.outcome == PollOutcome.FETCHED and self.ingest is not None:
            return f"fetched: {self.ingest.summary()}"
        if self.outcome == PollOutcome.FAILED:
            return f"failed: {self.error}"
        return str(self.outcome)


def lock_key(source_id: int) -> str:
    return f"newsletter:feeds:lock:{source_id}"


@contextmanager
def source_lock(source_id: int) -> Iterator[bool]:
    """Hold the poll lock of a source; yields whether it was acquired (never waits). The lock
    expires on its own after the longest a poll can take, should the holder die."""
    lock = redis_state.client().lock(
        lock_key(source_id), timeout=settings.FEED_TIMEOUT * 2 + settings.FEED_DEADLINE + 60, blocking=False
    )
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            try:
                lock.release()
            except redis.exceptions.LockError:  # expired meanwhile: someone else may hold it now
                logger.warning("feed poll lock of source %s expired before release", source_id)


def poll_interval(source: Source) -> timedelta:
    """How long after its last poll a source is due again (longer after failures)."""
    interval = timedelta(minutes=max(settings.FEED_POLL_MINUTES, 1))
    if source.failure_count:
        interval = min(interval * 2 ** min(source.failure_count, 10), max(MAX_BACKOFF, interval))
    return interval


def is_due(source: Source, now: datetime) -> bool:
    return source.last_polled_at is None or source.last_polled_at + poll_interval(source) <= now


def ensure_site_feed() -> Source | None:
    """The Source of ``settings.FEED_URL`` (created on first use), or None when it is unset."""
    if not settings.FEED_URL:
        return None
    source = Source.objects.filter(kind=Source.Kind.FEED, url=settings.FEED_URL).first()
    if source is None:
        source = Source.objects.create(name=settings.PUBLICATION_NAME[:100], url=settings.FEED_URL)
    return source


def due_feed_ids(now: datetime | None = None) -> list[int]:
    """Ids of the active feed sources due for a poll, the least recently polled first."""
    now = now or timezone.now()
    sources = Source.objects.filter(kind=Source.Kind.FEED, is_active=True).only(
        "id", "last_polled_at", "failure_count"
    )
    due = [source for source in sources if is_due(source, now)]
    due.sort(key=lambda s: (s.last_polled_at is not None, s.last_polled_at or now))
    return [source.id for source in due]


def record_success(source_id: int, *, at: datetime, etag: str, last_modified: str) -> None:
    Source.objects.filter(pk=source_id).update(
        last_polled_at=at,
        last_success_at=at,
        last_error="",
        failure_count=0,
        etag=etag[:300],
        last_modified=last_modified[:100],
    )


def record_failure(source_id: int, *, at: datetime, error: str) -> None:
    Source.objects.filter(pk=source_id).update(
        last_polled_at=at, last_error=error[:ERROR_MAX], failure_count=F("failure_count") + 1
    )


def poll_source(source_id: int, *, force: bool = False) -> PollResult:
    """Poll one feed source now: a conditional GET, then parse and ingest the entries.

    Skips (``BUSY``) when another process holds the source's lock, (``NOT_DUE``) when it was
    polled within its interval unless ``force``, (``GONE``) when it is no active feed. A 304 is
    a success that changes no article. A feed error is recorded on the source and returned as
    ``FAILED``; it is never raised. Safe to call concurrently and repeatedly.
    """
    with source_lock(source_id) as acquired:
        if not acquired:
            return PollResult(PollOutcome.BUSY)
        source = Source.objects.filter(pk=source_id, kind=Source.Kind.FEED).first()
        if source is None or not (source.is_active or force):
            return PollResult(PollOutcome.GONE)
        now = timezone.now()
        if not force and not is_due(source, now):
            return PollResult(PollOutcome.NOT_DUE)
        try:
            fetched = fetch_feed(source.url, etag=source.etag, last_modified=source.last_modified)
            if fetched.not_modified:
                record_success(source.id, at=now, etag=source.etag, last_modified=source.last_modified)
                return PollResult(PollOutcome.NOT_MODIFIED)
            parsed = parse_feed(
                fetched.body, url=fetched.url, fetched_at=now, content_type=fetched.content_type
            )
        except FeedError as exc:
            record_failure(source.id, at=now, error=str(exc))
            logger.info("feed source %s failed: %s", source.id, exc)
            return PollResult(PollOutcome.FAILED, error=str(exc))
        result = ingest_entries(source, parsed.entries, now=now)
        # The validators are stored only now: had ingesting failed, the next poll refetches.
        record_success(source.id, at=now, etag=fetched.etag, last_modified=fetched.last_modified)
        logger.info("feed source %s polled: %s", source.id, result.summary())
        return PollResult(PollOutcome.FETCHED, ingest=result)
