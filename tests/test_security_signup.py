"""Sign-up tells a stranger nothing and cannot be used to flood someone's inbox: the answer
(status, body, headers) and the work a request does are the same for a new address and for
every kind of known one; however many sign-ups name one address, from however many
networks and in whatever spelling, it gets one confirmation per window (counted at the
provider). The request itself only validates, counts the client's attempts and queues one
task; the worker does every write, so the request's database queries (none) and Redis commands
are identical whatever the address. Timing is measured, not asserted, by bench/load_signups.py."""

import json
import re
import threading

import pytest
import redis
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from subscribers import inbox
from subscribers.models import Subscriber
from subscribers.tasks import process_signups, send_confirmations
from tests.factories import SubscriberFactory, TopicFactory
from tests.signups import queued_signups, queued_tasks, run_queued_signups

pytestmark = pytest.mark.django_db

KNOWN = {
    "new": None,
    "pending": Subscriber.Status.PENDING,
    "active": Subscriber.Status.ACTIVE,
    "unsubscribed": Subscriber.Status.UNSUBSCRIBED,
    "bounced": Subscriber.Status.BOUNCED,
    "complained": Subscriber.Status.COMPLAINED,
}


@pytest.fixture
def unlimited(settings):
    settings.SIGNUP_RATE_LIMIT_PER_IP = 10**6


def answer(client, kind: str, django_capture_on_commit_callbacks) -> tuple:
    email = f"{kind}@example.org"
    if KNOWN[kind]:
        SubscriberFactory(email=email, status=KNOWN[kind])
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks() as on_commit:
        page = client.post("/subscribe/", {"email": email, "frequency": "daily"})
        api = client.post("/api/subscribe", json.dumps({"email": email}), content_type="application/json")
    writes = [q["sql"].split()[0] for q in queries.captured_queries if not q["sql"].startswith("SELECT")]
    queued = [message["email"] for message in queued_signups()]
    with django_capture_on_commit_callbacks(execute=True):
        assert run_queued_signups() == 2
    return (
        (
            page.status_code,
            page.get("Location"),
            api.status_code,
            api.content,
            tuple(sorted(api.headers.items())),
        ),
        len(on_commit),
        sorted(writes),
        [q["sql"] for q in queries.captured_queries],
        queued,
    )


def test_the_answer_and_the_work_are_the_same_for_new_and_known_addresses(
    client, unlimited, django_capture_on_commit_callbacks
):
    results = {kind: answer(client, kind, django_capture_on_commit_callbacks) for kind in KNOWN}
    responses = {kind: r[0] for kind, r in results.items()}
    assert len(set(responses.values())) == 1, responses
    # The request never looks the address up and writes nothing: it puts the sign-up in the
    # inbox (page + API = two), whoever the address is, and the worker does the rest.
    assert {kind: r[1] for kind, r in results.items()} == dict.fromkeys(KNOWN, 0)
    assert {kind: r[2] for kind, r in results.items()} == {kind: [] for kind in KNOWN}
    assert {kind: r[3] for kind, r in results.items()} == {kind: [] for kind in KNOWN}
    assert {kind: r[4] for kind, r in results.items()} == {
        kind: [f"{kind}@example.org"] * 2 for kind in KNOWN
    }
    # Run by the worker, each request writes a consent record and the batch queues its
    # confirmation task naming the subscriber, whoever the address is (the confirmation task
    # decides for each subscriber whether anything is sent).
    subscribers = {kind: Subscriber.objects.get(email=f"{kind}@example.org") for kind in KNOWN}
    for subscriber in subscribers.values():
        assert list(subscriber.consents.values_list("action", flat=True)) == ["subscribe"] * 2
    # (Each kind's first sign-up found no drain pending and queued one; its two sign-ups were
    # drained as one batch, and one address is one confirmation of the batch.)
    assert queued_tasks() == [
        task
        for kind in KNOWN
        for task in [(process_signups.name, [], {}), (send_confirmations.name, [[subscribers[kind].pk]], {})]
    ]


class RedisCommands:
    """Every command this test's thread sends to Redis (cache and broker), as (command, key).

    The test client serves requests in the calling thread; other threads of the process (a Celery
    result consumer left by an earlier test, say) talk to Redis on their own schedule and are not
    part of the request path.
    """

    def __init__(self):
        self.commands: list[tuple[str, str]] = []
        self.thread = threading.get_ident()

    def record(self, args) -> None:
        if threading.get_ident() != self.thread:
            return
        command = args[0].decode() if args and isinstance(args[0], bytes) else str(args[0] if args else "")
        if command.upper().endswith("SUBSCRIBE"):
            # The result backend's pub/sub bookkeeping for results of earlier tests (run when
            # their AsyncResult objects are collected), never part of a sign-up.
            return
        parts = [a.decode() if isinstance(a, bytes) else str(a) for a in args[:2]]
        # Digits vary by the clock (the rate-limit window) and by task ids, not by the address.
        self.commands.append(tuple(re.sub(r"[0-9]+", "N", part) for part in parts))


@pytest.fixture
def redis_commands(monkeypatch):
    recorder = RedisCommands()
    for packer in (redis.connection.PythonRespSerializer, redis.connection.HiredisRespSerializer):
        original = packer.pack

        def pack(self, *args, _original=original):
            recorder.record(args)
            return _original(self, *args)

        monkeypatch.setattr(packer, "pack", pack)
    return recorder


@pytest.mark.parametrize("topics", [False, True])
def test_the_request_path_makes_no_queries_and_the_same_redis_commands_for_new_and_known_addresses(
    client, unlimited, redis_commands, django_assert_num_queries, topics
):
    topic_ids = [TopicFactory(slug="sport").pk] if topics else []
    for kind, status in KNOWN.items():
        if status:
            SubscriberFactory(email=f"{kind}@example.org", status=status)

    def request_path(email: str) -> tuple[list[str], list[tuple[str, str]]]:
        redis_commands.commands.clear()
        with CaptureQueriesContext(connection) as queries:
            page = client.post("/subscribe/", {"email": email, "frequency": "daily", "topics": topic_ids})
            api = client.post(
                "/api/subscribe",
                json.dumps({"email": email, "topics": topic_ids}),
                content_type="application/json",
            )
        assert (page.status_code, api.status_code) == (302, 202)
        return [q["sql"] for q in queries.captured_queries], list(redis_commands.commands)

    request_path("warm-up@example.org")  # first use opens connections and declares the queue
    seen = {kind: request_path(f"{kind}@example.org") for kind in KNOWN}
    assert all(seen[kind] == seen["new"] for kind in KNOWN), seen
    sql, commands = seen["new"]
    # Topic ids are checked against the offered topics (a read that does not involve the
    # address); nothing else touches the database, and nothing at all without topics.
    assert len(sql) == (2 if topics else 0) and all(q.startswith("SELECT") for q in sql), sql
    with django_assert_num_queries(0):
        client.post("/subscribe/", {"email": "known@example.org", "frequency": "daily"})
    assert ("RPUSH", inbox.INBOX) in commands  # the sign-up, in the inbox
    assert sum(1 for c in commands if c[0] == "RPUSH") == 2  # page + API
    assert len(queued_signups()) == 2 * (1 + len(KNOWN)) + 1
    # The warm-up queued the one drain; sign-ups while it waits only append.
    assert [name for name, _, _ in queued_tasks()] == ["subscribers.tasks.process_signups"]
    assert not Subscriber.objects.filter(email__in=["new@example.org", "warm-up@example.org"]).exists()


@pytest.fixture
def tasks_run_here(monkeypatch):
    """Queued confirmations run at once in this process (and go to the provider)."""
    monkeypatch.setattr(
        send_confirmations,
        "delay",
        lambda *args, **kwargs: send_confirmations.apply(args, kwargs, throw=True),
    )


def test_sign_up_flooding_of_one_address_sends_one_confirmation(
    unlimited, tasks_run_here, local_provider, django_capture_on_commit_callbacks
):
    spellings = ["victim@example.org", "VICTIM@Example.ORG", "  victim@example.org ", "Victim@EXAMPLE.org"]
    for n in range(24):
        client = Client(REMOTE_ADDR=f"198.51.100.{n + 1}")  # a botnet: a new network each time
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/subscribe/", {"email": spellings[n % len(spellings)], "frequency": "daily"}
            )
            assert run_queued_signups() == 1
        assert response.status_code == 302
    assert Subscriber.objects.filter(email="victim@example.org").count() == 1
    assert len(local_provider.messages(to="victim@example.org")) == 1
    assert local_provider.stats()["messages"] == 1


def test_one_network_is_rate_limited_and_told_when_to_come_back(client, settings):
    settings.SIGNUP_RATE_LIMIT_PER_IP = 5
    answers = [
        client.post("/subscribe/", {"email": f"r{n}@example.org", "frequency": "daily"}).status_code
        for n in range(8)
    ]
    assert answers == [302] * 5 + [429] * 3
    response = client.post(
        "/api/subscribe", json.dumps({"email": "x@example.org"}), content_type="application/json"
    )
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert run_queued_signups() == 5
    assert Subscriber.objects.count() == 5
