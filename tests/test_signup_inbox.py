"""The sign-up inbox (subscribers/inbox.py) on the real Redis: requests append, the worker's
drain stores batches in one transaction each, and nothing is lost or stored twice."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from subscribers import inbox, services
from subscribers.models import ConsentRecord, Subscriber
from tests.factories import TopicFactory
from worker import app

pytestmark = pytest.mark.django_db


def message(n: int, **fields) -> dict:
    signup = services.Signup(
        email=f"reader{n}@example.org",
        consent=services.Consent(
            source=ConsentRecord.Source.API,
            ip_address="203.0.113.5",
            user_agent="test",
            wording="I agree.",
            at=timezone.now(),
        ),
    )
    return {**signup.as_message(), **fields}


def test_only_the_first_sign_up_after_a_quiet_spell_asks_for_a_drain():
    assert inbox.append(message(1)) is True
    assert inbox.append(message(2)) is False  # a drain is pending already
    assert inbox.drain(services.process_signups) == 2
    assert inbox.append(message(3)) is True  # the drain lowered the flag


def test_a_drain_stores_everything_in_batches_oldest_first_and_empties_the_inbox():
    for n in range(7):
        inbox.append(message(n))
    batches = []

    def store(messages):
        batches.append([m["email"] for m in messages])
        services.process_signups(messages)

    assert inbox.drain(store, batch_size=3) == 7
    assert [len(b) for b in batches] == [3, 3, 1]
    assert batches[0][0] == "reader0@example.org" and batches[-1] == ["reader6@example.org"]
    assert inbox.waiting() == 0
    assert Subscriber.objects.filter(status=Subscriber.Status.PENDING).count() == 7
    assert ConsentRecord.objects.count() == 7


def test_a_batch_that_fails_to_store_stays_in_the_inbox_for_the_next_drain():
    for n in range(5):
        inbox.append(message(n))
    calls = []

    def broken(messages):
        calls.append(len(messages))
        if len(calls) == 2:
            raise RuntimeError("database went away")
        services.process_signups(messages)

    with pytest.raises(RuntimeError):
        inbox.drain(broken, batch_size=2)
    assert inbox.waiting() == 3  # the first batch was stored and removed; the second was not
    assert inbox.drain(services.process_signups) == 3
    assert Subscriber.objects.count() == 5
    assert ConsentRecord.objects.count() == 5  # nobody stored twice


def test_one_drain_at_a_time_and_the_other_finds_the_sign_ups_later():
    inbox.append(message(1))
    held = inbox.client().lock(inbox.LOCK, timeout=30)
    assert held.acquire(blocking=False)
    assert inbox.drain(services.process_signups) is None  # another drain is running
    assert inbox.waiting() == 1 and not Subscriber.objects.exists()
    held.release()
    assert inbox.drain(services.process_signups) == 1


def test_sign_ups_appended_while_a_drain_runs_are_stored_by_it():
    inbox.append(message(1))
    seen = []

    def store(messages):
        seen.extend(m["email"] for m in messages)
        if len(seen) == 1:  # a reader signs up while the first batch is being stored
            assert inbox.append(message(2)) is True  # the flag was lowered: a drain is queued
        services.process_signups(messages)

    assert inbox.drain(store) == 2
    assert seen == ["reader1@example.org", "reader2@example.org"]


def test_a_refused_or_malformed_message_is_skipped_without_undoing_the_others():
    inbox.append(message(1))
    inbox.append(message(2, email="not an address"))  # a rule changed since the request
    inbox.append({"no": "consent"})
    inbox.client().rpush(inbox.INBOX, b"{truncated")
    inbox.append(message(3))
    assert inbox.drain(services.process_signups) == 5  # all taken off the inbox
    assert sorted(Subscriber.objects.values_list("email", flat=True)) == [
        "reader1@example.org",
        "reader3@example.org",
    ]
    assert inbox.waiting() == 0


def test_the_request_appends_and_beat_drains_every_minute_as_a_safety_net(client):
    response = client.post(
        "/api/subscribe", '{"email": "reader@example.org"}', content_type="application/json"
    )
    assert response.status_code == 202
    assert [m["email"] for m in inbox.peek()] == ["reader@example.org"]
    schedule = {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()}
    assert schedule["subscribers.tasks.process_signups"] == 60.0


def test_a_batch_looks_its_topics_up_once_and_drops_deleted_ones():
    sport, culture = TopicFactory(slug="sport"), TopicFactory(slug="culture")
    for n in range(4):
        inbox.append(message(n, topic_ids=[sport.pk, culture.pk, 999_999]))  # 999999: deleted since
    with CaptureQueriesContext(connection) as queries:
        assert inbox.drain(services.process_signups) == 4
    topic_reads = [q for q in queries.captured_queries if 'FROM "subscribers_topic"' in q["sql"]]
    assert len(topic_reads) == 1
    for subscriber in Subscriber.objects.all():
        assert set(subscriber.topics.values_list("slug", flat=True)) == {"sport", "culture"}
