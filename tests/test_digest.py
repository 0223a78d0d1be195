"""Editions: their default articles, the editor's moves, the life cycle, instant alerts."""

import io
from datetime import timedelta

import pytest
from django.utils import timezone

from mailer import digests
from mailer.models import Article, Digest, DigestArticle
from mailer.signals import articles_published
from subscribers.models import Frequency
from tests.factories import ArticleFactory, DigestFactory, SubscriberFactory

pytestmark = pytest.mark.django_db
S = Digest.Status


def ago(**kwargs):
    return timezone.now() - timedelta(**kwargs)


def with_articles(digest: Digest, *articles: Article) -> Digest:
    for i, article in enumerate(articles):
        DigestArticle.objects.create(digest=digest, article=article, position=i)
    return digest


def test_default_articles_are_the_new_ones_since_the_previous_edition_newest_first():
    previous = DigestFactory(status=S.SENT, frequency=Frequency.DAILY, created_at=ago(hours=20))
    already = ArticleFactory(published_at=ago(hours=22))
    with_articles(previous, already)
    ArticleFactory(title="before the previous edition", published_at=ago(hours=21))
    older = ArticleFactory(title="older", published_at=ago(hours=10))
    newer = ArticleFactory(title="newer", published_at=ago(hours=1))
    late_in_earlier = ArticleFactory(title="added to the previous one by hand", published_at=ago(hours=5))
    with_articles(
        DigestFactory(status=S.SENT, frequency=Frequency.DAILY, created_at=ago(days=3)), late_in_earlier
    )
    future = ArticleFactory(title="embargoed", published_at=timezone.now() + timedelta(hours=2))

    edition = digests.create_edition(frequency=Frequency.DAILY)

    assert edition.status == S.DRAFT
    assert list(edition.articles.order_by("digestarticle__position")) == [newer, older]
    assert future not in edition.articles.all()
    # A weekly edition does not care what the daily one took.
    weekly = digests.create_edition(frequency=Frequency.WEEKLY)
    assert {a.pk for a in weekly.articles.all()} >= {already.pk, older.pk, newer.pk, late_in_earlier.pk}


def test_without_a_previous_edition_a_daily_looks_back_one_day():
    recent = ArticleFactory(published_at=ago(hours=23))
    ArticleFactory(published_at=ago(hours=25))
    assert [a.pk for a in digests.default_articles(frequency=Frequency.DAILY, until=timezone.now())] == [
        recent.pk
    ]


def test_editor_reorders_and_chooses_articles():
    a, b, c = ArticleFactory(), ArticleFactory(), ArticleFactory()
    edition = digests.create_edition(articles=[a, b])
    digests.set_articles(edition, [c.pk, a.pk, c.pk])
    assert list(DigestArticle.objects.filter(digest=edition).values_list("article_id", flat=True)) == [
        c.pk,
        a.pk,
    ]
    with pytest.raises(digests.EditionError):
        digests.set_articles(edition, [a.pk, 999999])
    assert DigestArticle.objects.filter(digest=edition).count() == 2


def test_a_sending_edition_cannot_be_edited_or_cancelled():
    edition = with_articles(DigestFactory(status=S.SENDING), ArticleFactory())
    with pytest.raises(digests.EditionNotEditable):
        digests.set_articles(edition, [ArticleFactory().pk])
    with pytest.raises(digests.EditionStateChanged):
        digests.cancel_edition(edition)
    assert Digest.objects.get(pk=edition.pk).status == S.SENDING


def test_schedule_unschedule_cancel_reopen():
    edition = with_articles(DigestFactory(), ArticleFactory())
    when = timezone.now() + timedelta(days=1)
    digests.schedule_edition(edition, when=when)
    edition.refresh_from_db()
    assert edition.status == S.SCHEDULED and edition.scheduled_for == when
    digests.unschedule_edition(edition)
    assert Digest.objects.get(pk=edition.pk).status == S.DRAFT
    digests.cancel_edition(edition)
    assert Digest.objects.get(pk=edition.pk).status == S.CANCELLED
    digests.reopen_edition(edition)
    assert Digest.objects.get(pk=edition.pk).status == S.DRAFT


def test_scheduling_refuses_the_past_and_empty_editions():
    edition = with_articles(DigestFactory(), ArticleFactory())
    with pytest.raises(digests.EditionError, match="passed"):
        digests.schedule_edition(edition, when=ago(hours=1))
    empty = DigestFactory()
    with pytest.raises(digests.EditionEmpty):
        digests.schedule_edition(empty, when=timezone.now() + timedelta(hours=1))
    with pytest.raises(digests.EditionEmpty):
        digests.send_now(empty)
    assert set(Digest.objects.values_list("status", flat=True)) == {S.DRAFT}


def test_send_now_claims_the_edition():
    edition = with_articles(DigestFactory(), ArticleFactory())
    digests.send_now(edition)
    assert edition.status == S.SENDING and edition.started_at is not None
    with pytest.raises(digests.EditionStateChanged):
        digests.send_now(edition)


def test_life_cycle_moves_are_guarded():
    edition = DigestFactory(status=S.SCHEDULED)
    stale = Digest.objects.get(pk=edition.pk)
    assert edition.move(S.CANCELLED)
    # A second process holding the old state cannot also move it.
    assert not stale.move(S.SENDING, sources=[S.SCHEDULED])
    assert Digest.objects.get(pk=edition.pk).status == S.CANCELLED
    with pytest.raises(ValueError):
        edition.move(S.SENT, sources=[S.DRAFT])
    with pytest.raises(ValueError):
        edition.move(S.PAUSED, sources=[S.CANCELLED])


def test_an_instant_alert_is_made_once_per_article():
    SubscriberFactory(frequency=Frequency.INSTANT)
    article = ArticleFactory(title="Flood warning issued", excerpt="<p>Move cars off the quay.</p>")

    articles_published.send(sender=Article, article_ids=[article.pk])
    articles_published.send(sender=Article, article_ids=[article.pk])
    digests.create_alerts([article.pk])

    alerts = Digest.objects.filter(frequency=Frequency.INSTANT)
    assert alerts.count() == 1
    alert = alerts.get()
    assert list(alert.articles.all()) == [article]
    assert alert.subject == "Flood warning issued"
    assert alert.preview_text == "Move cars off the quay."
    assert alert.status == S.SENDING  # scheduled now and claimed
    assert Article.objects.get(pk=article.pk).alerted_at is not None


def test_no_alert_without_instant_subscribers_or_for_old_articles():
    SubscriberFactory(frequency=Frequency.DAILY)
    article = ArticleFactory()
    assert digests.create_alerts([article.pk]) == []
    SubscriberFactory(frequency=Frequency.INSTANT)
    old = ArticleFactory(published_at=ago(days=3))
    assert digests.create_alerts([old.pk]) == []
    assert Article.objects.get(pk=old.pk).alerted_at is None
    assert len(digests.create_alerts([article.pk])) == 1


def test_send_edition_command_schedules_in_local_time_and_sends_now(settings):
    from datetime import UTC, datetime

    from django.core.management import CommandError, call_command

    settings.PUBLICATION_TIME_ZONE = "Europe/London"
    digest = with_articles(DigestFactory(), ArticleFactory())
    call_command("send_edition", str(digest.pk), "--at", "2030-07-01 07:30", stdout=io.StringIO())
    digest.refresh_from_db()
    assert digest.status == S.SCHEDULED and digest.scheduled_for == datetime(2030, 7, 1, 6, 30, tzinfo=UTC)
    with pytest.raises(CommandError, match="does not exist"):
        call_command("send_edition", str(digest.pk), "--at", "2030-03-31 01:30")
    call_command("send_edition", str(digest.pk), stdout=io.StringIO())
    assert Digest.objects.get(pk=digest.pk).status == S.SENDING
    with pytest.raises(CommandError, match="Only a draft or a scheduled"):
        call_command("send_edition", str(digest.pk))


def test_articles_ingested_from_a_feed_become_one_instant_alert_each(django_capture_on_commit_callbacks):
    from mailer.articles import ingest_entries
    from mailer.feeds import ArticleData

    SubscriberFactory(frequency=Frequency.INSTANT)
    entries = [
        ArticleData(url="https://example.com/news/a/", title="First story", guid="a"),
        ArticleData(url="https://example.com/news/b/", title="Second story", guid="b"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        ingest_entries(None, entries)
    with django_capture_on_commit_callbacks(execute=True):
        ingest_entries(None, entries)  # read again: nothing new, no new alert

    alerts = Digest.objects.filter(frequency=Frequency.INSTANT).order_by("id")
    assert [a.subject for a in alerts] == ["First story", "Second story"]
    assert all(alert.articles.count() == 1 for alert in alerts)
