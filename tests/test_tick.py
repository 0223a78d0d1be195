"""The beat tick: schedules make editions, due editions are claimed once, even by two ticks."""

import json
import threading
from datetime import UTC, datetime, time, timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from mailer import digests
from mailer.models import Digest, DigestArticle, Schedule
from subscribers.models import Frequency
from tests.factories import ArticleFactory, DigestFactory
from worker import app


def queued_starts() -> list[int]:
    """The digest ids of start_edition messages waiting on the broker (real Redis), in the
    "bulk" queue that worker/celery.py routes an edition's fan-out to."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    ids = []
    for raw in broker.lrange("bulk", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == digests.START_EDITION:
            ids.append(int(message["headers"]["argsrepr"].strip("[]()").rstrip(",")))
    return ids


def due_digest(**fields) -> Digest:
    digest = DigestFactory(
        status=Digest.Status.SCHEDULED, scheduled_for=timezone.now() - timedelta(minutes=1), **fields
    )
    DigestArticle.objects.create(digest=digest, article=ArticleFactory())
    return digest


def london_daily(next_run_at: datetime, **fields) -> Schedule:
    return Schedule.objects.create(
        name="Morning briefing",
        frequency=Frequency.DAILY,
        send_time=time(7, 0),
        time_zone="Europe/London",
        next_run_at=next_run_at,
        **fields,
    )


@pytest.mark.django_db(transaction=True)
def test_a_due_edition_is_claimed_and_started_once():
    digest = due_digest()
    later = DigestFactory(status=Digest.Status.SCHEDULED, scheduled_for=timezone.now() + timedelta(hours=1))

    first = digests.tick()
    second = digests.tick()

    assert first.claimed == [digest.pk] and second.claimed == []
    digest.refresh_from_db()
    assert digest.status == Digest.Status.SENDING and digest.started_at is not None
    assert Digest.objects.get(pk=later.pk).status == Digest.Status.SCHEDULED
    assert queued_starts() == [digest.pk]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_claimers_never_start_one_edition_twice():
    editions = [due_digest() for _ in range(24)]
    barrier = threading.Barrier(2)
    results: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def claimer(name: str) -> None:
        try:
            barrier.wait(timeout=10)
            results[name] = digests.claim_due_digests(page=5)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claimer, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors
    assert not set(results["a"]) & set(results["b"])
    assert sorted(results["a"] + results["b"]) == sorted(d.pk for d in editions)
    assert sorted(queued_starts()) == sorted(d.pk for d in editions)
    assert set(Digest.objects.values_list("status", flat=True)) == {Digest.Status.SENDING}


@pytest.mark.django_db(transaction=True)
def test_an_edition_locked_by_another_claimer_is_not_claimed_again():
    digest = due_digest()
    other: dict[str, object] = {}

    def second_claimer() -> None:
        try:
            other["claimed"] = digests.claim_due_digests()
        finally:
            connection.close()

    with transaction.atomic():
        # The first claimer holds the row and moves it, but has not committed yet.
        locked = Digest.objects.select_for_update().get(pk=digest.pk)
        assert locked.move(Digest.Status.SENDING, sources=[Digest.Status.SCHEDULED])
        thread = threading.Thread(target=second_claimer)
        thread.start()
        thread.join(timeout=1.0)
        if connection.vendor == "postgresql":
            # skip_locked: the second claimer neither waits nor takes the locked edition.
            assert not thread.is_alive()
            assert other["claimed"] == []
        # SQLite: the second claimer's IMMEDIATE transaction waits for this one to commit.
    thread.join(timeout=30)
    assert other["claimed"] == []
    assert Digest.objects.get(pk=digest.pk).status == Digest.Status.SENDING


@pytest.mark.django_db(transaction=True)
def test_a_due_edition_with_no_articles_is_skipped_not_sent():
    digest = DigestFactory(status=Digest.Status.SCHEDULED, scheduled_for=timezone.now())
    result = digests.tick()
    digest.refresh_from_db()
    assert result.claimed == []
    assert digest.status == Digest.Status.SKIPPED
    assert "no articles" in digest.status_note
    assert queued_starts() == []


@pytest.mark.django_db(transaction=True)
def test_a_due_schedule_makes_its_edition_and_moves_on():
    now = datetime(2026, 3, 28, 7, 0, 30, tzinfo=UTC)  # 07:00 GMT, the day before BST
    new = ArticleFactory(title="Overnight news", published_at=now - timedelta(hours=3))
    ArticleFactory(title="Too old for this edition", published_at=now - timedelta(days=3))
    schedule = london_daily(datetime(2026, 3, 28, 7, 0, tzinfo=UTC), subject_template="{publication}: {date}")

    result = digests.tick(now=now)

    assert len(result.made) == 1 and result.claimed == result.made
    digest = Digest.objects.get(pk=result.made[0])
    assert digest.schedule == schedule
    assert digest.status == Digest.Status.SENDING
    assert digest.subject == f"{settings.PUBLICATION_NAME}: Saturday 28 March 2026"
    assert list(digest.articles.all()) == [new]
    schedule.refresh_from_db()
    assert schedule.last_run_at == datetime(2026, 3, 28, 7, 0, tzinfo=UTC)
    assert schedule.next_run_at == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)  # 07:00 BST
    # The same minute again (a second beat): nothing more.
    again = digests.tick(now=now)
    assert again.made == [] and again.claimed == []
    assert queued_starts() == [digest.pk]


@pytest.mark.django_db(transaction=True)
def test_a_schedule_run_with_nothing_new_is_skipped_with_a_note():
    now = datetime(2026, 5, 4, 6, 0, 10, tzinfo=UTC)
    schedule = london_daily(datetime(2026, 5, 4, 6, 0, tzinfo=UTC))
    result = digests.tick(now=now)
    assert result.made == [] and len(result.skipped) == 1
    digest = Digest.objects.get(pk=result.skipped[0])
    assert digest.status == Digest.Status.SKIPPED and "Nothing new" in digest.status_note
    assert queued_starts() == []
    schedule.refresh_from_db()
    assert schedule.next_run_at == datetime(2026, 5, 5, 6, 0, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_missed_runs_make_one_edition_after_a_restart():
    now = datetime(2026, 5, 7, 9, 0, tzinfo=UTC)
    ArticleFactory(published_at=now - timedelta(hours=1))
    schedule = london_daily(datetime(2026, 5, 4, 6, 0, tzinfo=UTC))  # down since Monday
    result = digests.tick(now=now)
    assert len(result.made) == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at == datetime(2026, 5, 8, 6, 0, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_an_active_schedule_without_a_next_run_gets_one_and_inactive_ones_do_nothing():
    now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    fresh = london_daily(None)
    off = london_daily(datetime(2026, 5, 4, 6, 0, tzinfo=UTC), is_active=False)
    result = digests.tick(now=now)
    assert result.made == result.skipped == []
    assert Schedule.objects.get(pk=fresh.pk).next_run_at == datetime(2026, 5, 5, 6, 0, tzinfo=UTC)
    assert Schedule.objects.get(pk=off.pk).next_run_at == datetime(2026, 5, 4, 6, 0, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_a_claimed_edition_whose_start_was_lost_is_queued_again():
    digest = DigestFactory(
        status=Digest.Status.SENDING, started_at=timezone.now() - timedelta(hours=1), fanout_cursor=0
    )
    running = DigestFactory(
        status=Digest.Status.SENDING, started_at=timezone.now() - timedelta(hours=1), fanout_cursor=40
    )
    result = digests.tick()
    assert result.requeued == [digest.pk]
    assert running.pk not in queued_starts()


@pytest.mark.worker
def test_beat_tick_through_a_real_worker_claims_a_due_edition(celery_worker):
    digest = due_digest()
    app.send_task("mailer.tasks.digests.tick")
    deadline = timezone.now() + timedelta(seconds=20)
    while timezone.now() < deadline:
        digest.refresh_from_db()
        if digest.status != Digest.Status.SCHEDULED:
            break
        threading.Event().wait(0.1)
    # With nobody subscribed, delivery may already have finished the edition.
    assert digest.status in (Digest.Status.SENDING, Digest.Status.SENT)
    assert digest.started_at is not None


@pytest.mark.django_db(transaction=True)
def test_two_ticks_at_once_make_one_edition_per_schedule_run():
    now = datetime(2026, 5, 4, 6, 0, 30, tzinfo=UTC)
    ArticleFactory(published_at=now - timedelta(hours=2))
    schedules = [london_daily(datetime(2026, 5, 4, 6, 0, tzinfo=UTC)) for _ in range(3)]
    barrier = threading.Barrier(2)
    results: list[digests.TickResult] = []
    errors: list[BaseException] = []

    def ticker() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(digests.tick(now=now))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ticker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors
    made = [pk for result in results for pk in result.made + result.skipped]
    claimed = [pk for result in results for pk in result.claimed]
    assert len(made) == len(set(made)) == 3
    assert Digest.objects.count() == 3
    assert sorted(Digest.objects.values_list("schedule_id", flat=True)) == sorted(s.pk for s in schedules)
    # The first edition took the article; the other two had nothing new and were skipped.
    assert len(claimed) == len(set(claimed)) == 1
    assert queued_starts() == claimed
