"""Polling a feed source over real HTTP: conditional GETs, updates, failures recorded, locks."""

import gzip
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from mailer.models import Article, DigestArticle, Source
from mailer.polling import PollOutcome, due_feed_ids, poll_source, source_lock
from mailer.signals import articles_published
from tests.factories import DigestFactory, SourceFactory, TopicFactory
from tests.feedsamples import BILLION_LAUGHS, HTML_PAGE, wp_feed, wp_item

LAST_MODIFIED = "Tue, 24 Nov 2026 09:00:00 GMT"


@pytest.fixture
def fast_feeds(settings):
    settings.FEED_TIMEOUT = 0.5
    settings.FEED_DEADLINE = 5
    settings.FEED_MAX_BYTES = 64 * 1024
    settings.FEED_POLL_MINUTES = 10
    return settings


def source_for(url: str) -> Source:
    return SourceFactory(url=url)


def test_poll_stores_articles_and_records_success(db, feed_server, fast_feeds):
    TopicFactory(slug="politics", name="Politics")
    url = feed_server.add("/feed/", wp_feed(wp_item(1), wp_item(2, categories=("Sport",))), etag='"v1"')
    source = source_for(url)

    result = poll_source(source.id)

    assert result.outcome == PollOutcome.FETCHED
    assert len(result.ingest.created_ids) == 2
    assert Article.objects.filter(source=source).count() == 2
    assert [t.slug for t in Article.objects.get(guid="https://news.example/?p=1").topics.all()] == [
        "politics"
    ]
    source.refresh_from_db()
    assert source.last_error == "" and source.failure_count == 0
    assert source.etag == '"v1"'
    assert source.last_polled_at == source.last_success_at is not None
    path, headers = feed_server.requests[0]
    assert path == "/feed/"
    assert "newsletter feed reader" in headers["User-Agent"]


def test_etag_gives_304_and_nothing_changes(db, feed_server, fast_feeds):
    url = feed_server.add("/feed/", wp_feed(wp_item(1)), etag='"v1"')
    source = source_for(url)
    poll_source(source.id)

    again = poll_source(source.id, force=True)

    assert again.outcome == PollOutcome.NOT_MODIFIED
    assert feed_server.requests[1][1]["If-None-Match"] == '"v1"'
    assert Article.objects.count() == 1
    source.refresh_from_db()
    assert source.failure_count == 0 and source.last_error == ""


def test_last_modified_gives_304(db, feed_server, fast_feeds):
    url = feed_server.add("/feed/", wp_feed(wp_item(1)), last_modified=LAST_MODIFIED)
    source = source_for(url)
    poll_source(source.id)
    assert poll_source(source.id, force=True).outcome == PollOutcome.NOT_MODIFIED
    assert feed_server.requests[1][1]["If-Modified-Since"] == LAST_MODIFIED


def test_re_reading_without_validators_makes_no_second_copy(db, feed_server, fast_feeds):
    url = feed_server.add("/feed/", wp_feed(wp_item(1), wp_item(2), wp_item(3)))
    source = source_for(url)
    poll_source(source.id)
    again = poll_source(source.id, force=True)
    assert again.outcome == PollOutcome.FETCHED
    assert again.ingest.created_ids == [] and again.ingest.updated_ids == []
    assert Article.objects.count() == 3


def test_changed_entry_updates_the_article_until_it_was_mailed(db, feed_server, fast_feeds):
    sport = TopicFactory(slug="sport", name="Sport")
    url = feed_server.add("/feed/", wp_feed(wp_item(1), wp_item(2)))
    source = source_for(url)
    poll_source(source.id)
    mailed = Article.objects.get(guid="https://news.example/?p=2")
    digest = DigestFactory(status="sent")
    DigestArticle.objects.create(digest=digest, article=mailed)

    feed_server.add(
        "/feed/",
        wp_feed(
            wp_item(1, title="Corrected headline", categories=("Sport",)),
            wp_item(2, title="Changed after it was mailed"),
        ),
    )
    result = poll_source(source.id, force=True)

    first = Article.objects.get(guid="https://news.example/?p=1")
    assert first.title == "Corrected headline"
    assert list(first.topics.all()) == [sport]
    assert first.updated_at is not None
    assert result.ingest.updated_ids == [first.id]
    mailed.refresh_from_db()
    assert mailed.title == "Council\u2019s budget, part 2"
    assert Article.objects.count() == 2


def test_editor_edits_survive_re_reads_of_an_unchanged_entry(db, feed_server, fast_feeds):
    url = feed_server.add("/feed/", wp_feed(wp_item(1)))
    source = source_for(url)
    poll_source(source.id)
    Article.objects.update(title="Edited by the desk")
    poll_source(source.id, force=True)
    assert Article.objects.get().title == "Edited by the desk"


def test_new_articles_are_announced_after_commit(
    db, feed_server, fast_feeds, django_capture_on_commit_callbacks
):
    received = []

    def receiver(sender, article_ids, **kwargs):
        received.append(sorted(article_ids))

    articles_published.connect(receiver)
    try:
        url = feed_server.add("/feed/", wp_feed(wp_item(1), wp_item(2)))
        source = source_for(url)
        with django_capture_on_commit_callbacks(execute=True):
            poll_source(source.id)
        assert received == [sorted(Article.objects.values_list("id", flat=True))]
        with django_capture_on_commit_callbacks(execute=True):
            poll_source(source.id, force=True)  # nothing new: no second announcement
        assert len(received) == 1
    finally:
        articles_published.disconnect(receiver)


def _assert_failed(source: Source, fragment: str, failures: int = 1) -> None:
    source.refresh_from_db()
    assert fragment in source.last_error
    assert source.failure_count == failures
    assert source.last_polled_at is not None
    assert source.last_success_at is None
    assert Article.objects.count() == 0


def test_unreachable_feed_is_recorded(db, fast_feeds):
    source = source_for("http://127.0.0.1:9/feed/")  # discard port: nothing listens
    result = poll_source(source.id)
    assert result.outcome == PollOutcome.FAILED
    _assert_failed(source, "could not be fetched")


def test_error_status_is_recorded_and_failures_count_up(db, feed_server, fast_feeds):
    url = feed_server.add("/feed/", "Internal error", status=500, content_type="text/plain")
    source = source_for(url)
    poll_source(source.id)
    poll_source(source.id, force=True)
    _assert_failed(source, "HTTP 500", failures=2)


def test_slow_feed_times_out(db, feed_server, fast_feeds):
    url = feed_server.add("/feed/", wp_feed(wp_item(1)), delay=1.5)
    source = source_for(url)
    assert poll_source(source.id).outcome == PollOutcome.FAILED
    _assert_failed(source, "did not answer")


def test_oversized_feed_is_cut_off_while_streaming(db, feed_server, fast_feeds):
    url = feed_server.add("/feed/", endless=True)
    source = source_for(url)
    assert poll_source(source.id).outcome == PollOutcome.FAILED
    _assert_failed(source, "larger than the limit")


def test_oversized_feed_is_refused_by_its_content_length(db, feed_server, fast_feeds):
    url = feed_server.add("/feed/", wp_feed(*(wp_item(n) for n in range(200))))
    source = source_for(url)
    poll_source(source.id)
    _assert_failed(source, "larger than the limit")


@pytest.mark.parametrize(
    "body, fragment",
    [(BILLION_LAUGHS, "entities"), (HTML_PAGE, "not an RSS or Atom feed"), ("<rss>", "malformed")],
    ids=["billion-laughs", "html-page", "truncated"],
)
def test_hostile_or_broken_documents_are_recorded(db, feed_server, fast_feeds, body, fragment):
    url = feed_server.add("/feed/", body)
    source = source_for(url)
    assert poll_source(source.id).outcome == PollOutcome.FAILED
    _assert_failed(source, fragment)


def test_recovery_clears_the_error(db, feed_server, fast_feeds):
    url = feed_server.add("/feed/", "nope", status=503)
    source = source_for(url)
    poll_source(source.id)
    feed_server.add("/feed/", wp_feed(wp_item(1)))
    poll_source(source.id, force=True)
    source.refresh_from_db()
    assert (source.failure_count, source.last_error) == (0, "")
    assert Article.objects.count() == 1


def test_sources_are_due_by_their_interval_with_backoff_after_failures(db, fast_feeds):
    now = timezone.now()
    never = SourceFactory()
    recent = SourceFactory(last_polled_at=now - timedelta(minutes=5))
    old = SourceFactory(last_polled_at=now - timedelta(minutes=11))
    failing = SourceFactory(last_polled_at=now - timedelta(minutes=11), failure_count=2)  # waits 40 min
    SourceFactory(is_active=False)
    SourceFactory(kind=Source.Kind.API, url="")
    assert set(due_feed_ids(now)) == {never.id, old.id}
    assert failing.id in due_feed_ids(now + timedelta(minutes=30))
    assert recent.id not in due_feed_ids(now)


def test_a_source_is_never_polled_twice_at_once(db, feed_server, fast_feeds):
    url = feed_server.add("/feed/", wp_feed(wp_item(1)))
    source = source_for(url)
    with source_lock(source.id) as held:
        assert held
        assert poll_source(source.id, force=True).outcome == PollOutcome.BUSY
    assert feed_server.requests == []
    assert poll_source(source.id).outcome == PollOutcome.FETCHED


def test_not_due_source_is_skipped_unless_forced(db, feed_server, fast_feeds):
    url = feed_server.add("/feed/", wp_feed(wp_item(1)))
    source = source_for(url)
    poll_source(source.id)
    assert poll_source(source.id).outcome == PollOutcome.NOT_DUE
    assert len(feed_server.requests) == 1


def test_ingest_feeds_command(db, feed_server, fast_feeds, capsys):
    good = source_for(feed_server.add("/good/", wp_feed(wp_item(1))))
    call_command("ingest_feeds")
    assert f"#{good.id} {good.name}: fetched: 1 created" in capsys.readouterr().out
    source_for(feed_server.add("/bad/", "x", status=404))
    with pytest.raises(CommandError, match="1 feed"):
        call_command("ingest_feeds")
    with pytest.raises(CommandError, match="No feed source"):
        call_command("ingest_feeds", "99999")


def test_site_feed_setting_creates_its_source(db, feed_server, fast_feeds):
    fast_feeds.FEED_URL = feed_server.add("/site-feed/", wp_feed(wp_item(7)))
    call_command("ingest_feeds")
    source = Source.objects.get(url=fast_feeds.FEED_URL)
    assert source.kind == Source.Kind.FEED
    assert Article.objects.get().source == source


def test_compressed_bomb_is_cut_off_at_the_decompressed_size(db, feed_server, fast_feeds):
    bomb = gzip.compress(b"<rss><channel>" + b" " * (4 * 1024 * 1024))
    assert len(bomb) < fast_feeds.FEED_MAX_BYTES  # small on the wire
    url = feed_server.add("/feed/", bomb, headers={"Content-Encoding": "gzip"})
    source = source_for(url)
    assert poll_source(source.id).outcome == PollOutcome.FAILED
    _assert_failed(source, "larger than the limit")


def test_redirects_are_followed_and_links_resolve_against_the_final_address(db, feed_server, fast_feeds):
    final = feed_server.add("/new/feed/", wp_feed(wp_item(1, link="story/")))
    source = source_for(feed_server.add("/old-feed/", status=301, headers={"Location": final}))
    assert poll_source(source.id).outcome == PollOutcome.FETCHED
    assert Article.objects.get().url == feed_server.url("/new/feed/story/")


def test_concurrent_polls_of_one_source_fetch_once(transactional_db, feed_server, fast_feeds):
    fast_feeds.FEED_TIMEOUT = 5
    url = feed_server.add("/feed/", wp_feed(wp_item(1)), delay=1.0)
    source = source_for(url)
    results = []

    def poll_in_thread():
        try:
            results.append(poll_source(source.id, force=True).outcome)
        finally:
            connection.close()  # this thread's own connection

    first = threading.Thread(target=poll_in_thread)
    first.start()
    deadline = time.monotonic() + 5
    while not feed_server.requests and time.monotonic() < deadline:  # the first is fetching now
        time.sleep(0.01)
    results.append(poll_source(source.id, force=True).outcome)
    first.join()
    assert sorted(results) == sorted([PollOutcome.BUSY, PollOutcome.FETCHED])
    assert len(feed_server.requests) == 1
    assert Article.objects.count() == 1
