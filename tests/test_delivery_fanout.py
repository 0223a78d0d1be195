"""Fan-out: the ledger (one Delivery per recipient) and provider-sized batches per segment,
written page by page before anything is sent; resumable; constant queries per page."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_hypothesis
from hypothesis import strategies as st

from mailer import sending
from mailer.models import Batch, Delivery, Digest, DigestArticle
from mailer.sending import fanout
from subscribers.models import Frequency, Subscriber
from tests.factories import ArticleFactory, DigestFactory, TopicFactory

pytestmark = pytest.mark.django_db


def make_edition(**fields) -> Digest:
    """An edition with one article (for every topic), not started."""
    digest = DigestFactory(frequency=fields.pop("frequency", Frequency.DAILY), **fields)
    DigestArticle.objects.create(digest=digest, article=ArticleFactory(), position=0)
    return digest


def add_subscribers(
    count: int, *, prefix: str = "reader", segment_key: str = "", **fields
) -> list[Subscriber]:
    """``count`` subscribers in one insert (active and daily unless told otherwise)."""
    fields.setdefault("status", Subscriber.Status.ACTIVE)
    fields.setdefault("frequency", Frequency.DAILY)
    now = timezone.now()
    return Subscriber.objects.bulk_create(
        [
            Subscriber(email=f"{prefix}{i}@example.org", segment_key=segment_key, confirmed_at=now, **fields)
            for i in range(count)
        ]
    )


def test_fan_out_writes_one_delivery_per_eligible_subscriber_in_batches_per_segment(settings):
    settings.PROVIDER_BATCH_SIZE = 100
    sport, politics = TopicFactory(slug="sport"), TopicFactory(slug="politics")
    add_subscribers(230, prefix="all")
    add_subscribers(120, prefix="sport", segment_key=str(sport.pk))
    add_subscribers(5, prefix="weekly", frequency=Frequency.WEEKLY)
    add_subscribers(5, prefix="gone", status=Subscriber.Status.UNSUBSCRIBED)
    add_subscribers(5, prefix="unconfirmed", status=Subscriber.Status.PENDING)
    add_subscribers(5, prefix="bounced", status=Subscriber.Status.BOUNCED, segment_key=str(politics.pk))
    digest = make_edition()

    result = sending.start_edition(digest.pk)

    digest.refresh_from_db()
    assert result.started and result.recipients == 350
    assert digest.status == Digest.Status.SENDING and digest.fanout_done and digest.started_at
    assert digest.total_recipients == 350
    deliveries = Delivery.objects.filter(digest=digest)
    assert deliveries.count() == 350
    assert set(deliveries.values_list("status", flat=True)) == {Delivery.Status.PENDING}
    assert not deliveries.filter(subscriber__email__startswith="weekly").exists()
    assert not deliveries.exclude(subscriber__status=Subscriber.Status.ACTIVE).exists()
    batches = Batch.objects.filter(digest=digest).order_by("number")
    by_segment = {}
    for batch in batches:
        assert batch.sealed and batch.status == Batch.Status.PENDING
        assert batch.recipient_count == batch.deliveries.count() <= 100
        # Every delivery of a batch is of the batch's segment.
        assert set(batch.deliveries.values_list("subscriber__segment_key", flat=True)) == {batch.segment_key}
        by_segment.setdefault(batch.segment_key, []).append(batch.recipient_count)
    assert sorted(by_segment[""]) == [30, 100, 100]
    assert sorted(by_segment[str(sport.pk)]) == [20, 100]
    assert len({b.idempotency_key for b in batches}) == len(batches)


def test_fan_out_again_writes_nothing_new(settings):
    settings.PROVIDER_BATCH_SIZE = 50
    add_subscribers(120)
    digest = make_edition()
    sending.start_edition(digest.pk)
    again = sending.start_edition(digest.pk)
    assert again.recipients == 0
    assert Delivery.objects.filter(digest=digest).count() == 120
    assert Batch.objects.filter(digest=digest).count() == 3


def test_killed_fan_out_resumes_from_its_cursor(settings, monkeypatch):
    settings.PROVIDER_BATCH_SIZE = 40
    monkeypatch.setattr(fanout, "PAGE_SIZE", 50)
    subscribers = add_subscribers(175)
    digest = make_edition()
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.SENDING, started_at=timezone.now())
    digest.refresh_from_db()
    # Two pages written, then the worker dies: the cursor is where the ledger ends.
    fanout._fan_out_page(digest)
    digest.refresh_from_db()
    fanout._fan_out_page(digest)
    digest.refresh_from_db()
    assert digest.fanout_cursor == subscribers[99].pk and not digest.fanout_done
    assert Delivery.objects.filter(digest=digest).count() == 100

    sending.start_edition(digest.pk)

    digest.refresh_from_db()
    assert digest.fanout_done and digest.total_recipients == 175
    assert Delivery.objects.filter(digest=digest).count() == 175
    counts = sorted(Batch.objects.filter(digest=digest).values_list("recipient_count", flat=True))
    assert counts == [15, 40, 40, 40, 40]  # open batches were filled across pages
    assert sum(counts) == Delivery.objects.filter(digest=digest, batch__isnull=False).count()


def test_a_second_fan_out_cannot_write_the_same_page(settings):
    add_subscribers(30)
    digest = make_edition()
    Digest.objects.filter(pk=digest.pk).update(status=Digest.Status.SENDING)
    stale = Digest.objects.get(pk=digest.pk)
    sending.start_edition(digest.pk)
    # A fan-out that read the cursor before the other one moved it stops without writing.
    assert fanout._fan_out_page(stale) is None
    assert Delivery.objects.filter(digest=digest).count() == 30


def test_fan_out_queries_do_not_grow_with_the_list(settings, monkeypatch):
    settings.PROVIDER_BATCH_SIZE = 100
    monkeypatch.setattr(fanout, "PAGE_SIZE", 500)
    sport = TopicFactory(slug="sport")
    add_subscribers(1500, prefix="a")
    add_subscribers(1500, prefix="s", segment_key=str(sport.pk))
    small, large = make_edition(), make_edition()

    # The same list size per page, 1 page vs 6: queries grow by a constant per page only.
    Subscriber.objects.filter(email__startswith="s").update(frequency=Frequency.WEEKLY)
    Subscriber.objects.filter(email__in=[f"a{i}@example.org" for i in range(500, 1500)]).update(
        frequency=Frequency.WEEKLY
    )
    with CaptureQueriesContext(connection) as one_page:
        sending.start_edition(small.pk)
    Subscriber.objects.update(frequency=Frequency.DAILY)
    with CaptureQueriesContext(connection) as six_pages:
        sending.start_edition(large.pk)

    assert Delivery.objects.filter(digest=small).count() == 500
    assert Delivery.objects.filter(digest=large).count() == 3000
    # About ten per page; SQLite also splits the 500-row insert by its bound-parameter limit.
    per_page = (len(six_pages) - len(one_page)) / 5
    assert per_page <= 20, f"{per_page} queries per page of 500 recipients"


def test_edition_with_nobody_to_send_to_finishes_at_once():
    digest = make_edition()
    sending.start_edition(digest.pk)
    digest.refresh_from_db()
    assert digest.status == Digest.Status.SENT and digest.finished_at and digest.total_recipients == 0


def test_paused_or_cancelled_editions_are_not_started():
    add_subscribers(3)
    for status in (Digest.Status.PAUSED, Digest.Status.CANCELLED, Digest.Status.SENT):
        digest = make_edition(status=status)
        assert not sending.start_edition(digest.pk).started
        assert not Delivery.objects.filter(digest=digest).exists()


def test_each_batch_is_queued_once_and_a_rerun_queues_the_ones_still_pending(settings, monkeypatch):
    settings.PROVIDER_BATCH_SIZE = 40
    monkeypatch.setattr(fanout, "PAGE_SIZE", 50)
    queued: list[int] = []
    monkeypatch.setattr(fanout.queue, "queue_batches", lambda ids: queued.extend(ids))
    add_subscribers(130)
    digest = make_edition()

    sending.start_edition(digest.pk)
    batches = list(Batch.objects.filter(digest=digest).order_by("id").values_list("id", flat=True))
    assert sorted(queued) == batches  # each once, as it was sealed

    queued.clear()
    Batch.objects.filter(pk=batches[0]).update(status=Batch.Status.SENT)
    sending.start_edition(digest.pk)  # a redelivered fan-out task
    assert sorted(queued) == batches[1:]


@settings_hypothesis(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lists=st.lists(
        st.tuples(st.sampled_from(["", "1", "1,2", "2"]), st.sampled_from(list(Subscriber.Status))),
        max_size=60,
    ),
    batch_size=st.integers(min_value=1, max_value=25),
    page_size=st.integers(min_value=1, max_value=40),
)
def test_fan_out_invariants_hold_for_any_list(settings, monkeypatch, lists, batch_size, page_size):
    """Whatever the subscribers, segments, batch and page sizes: one delivery per active
    subscriber of the frequency and none for anyone else, every batch of one segment and at most
    the batch size, all sealed, the total right."""
    settings.PROVIDER_BATCH_SIZE = batch_size
    monkeypatch.setattr(fanout, "PAGE_SIZE", page_size)
    monkeypatch.setattr(fanout.queue, "queue_batches", lambda ids: None)
    Subscriber.objects.all().delete()
    now = timezone.now()
    Subscriber.objects.bulk_create(
        [
            Subscriber(email=f"p{i}@example.org", segment_key=key, status=status, confirmed_at=now)
            for i, (key, status) in enumerate(lists)
        ]
    )
    digest = make_edition()

    sending.start_edition(digest.pk)

    active = set(Subscriber.objects.filter(status=Subscriber.Status.ACTIVE).values_list("id", flat=True))
    ledger = list(
        Delivery.objects.filter(digest=digest).values_list(
            "subscriber_id", "subscriber__segment_key", "batch_id"
        )
    )
    assert sorted(s for s, _, _ in ledger) == sorted(active)
    digest.refresh_from_db()
    assert digest.fanout_done and digest.total_recipients == len(active)
    for batch in Batch.objects.filter(digest=digest):
        members = [key for _, key, b in ledger if b == batch.pk]
        assert batch.sealed and 0 < len(members) == batch.recipient_count <= batch_size
        assert set(members) == {batch.segment_key}
