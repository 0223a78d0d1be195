"""The beat task through a real Celery worker: poll_feeds queues due sources, the worker ingests."""

import time

import pytest

from mailer.models import Article, Source
from mailer.tasks.feeds import poll_feeds
from tests.factories import SourceFactory, TopicFactory
from tests.feedsamples import wp_feed, wp_item

pytestmark = pytest.mark.worker


def wait_for(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_beat_task_ingests_due_feeds_through_the_worker(celery_worker, feed_server, settings):
    settings.FEED_TIMEOUT = 2
    topic = TopicFactory(slug="politics", name="Politics")
    first = SourceFactory(url=feed_server.add("/a/", wp_feed(wp_item(1), wp_item(2)), etag='"a1"'))
    second = SourceFactory(url=feed_server.add("/b/", wp_feed(wp_item(3, guid="urn:b:3"))))
    broken = SourceFactory(url=feed_server.add("/broken/", "gone", status=410))

    poll_feeds.delay()  # what beat sends every minute

    wait_for(lambda: Article.objects.count() == 3)
    wait_for(lambda: Source.objects.filter(last_polled_at__isnull=False).count() == 3)
    assert set(Article.objects.values_list("source_id", flat=True)) == {first.id, second.id}
    assert Article.objects.filter(topics=topic).count() == 3
    broken.refresh_from_db()
    assert "HTTP 410" in broken.last_error and broken.failure_count == 1

    # The next tick finds nothing due yet: no source is queued or fetched again.
    requests_before = len(feed_server.requests)
    assert poll_feeds.apply().get() == 0
    assert len(feed_server.requests) == requests_before
