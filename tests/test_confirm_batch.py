"""Confirmations of a batch of sign-ups go out as one provider call (Mailgun batch sending to the
local provider over HTTP): the email is rendered once with merge placeholders, and each reader
gets the same email as a single send would give them, with their own address and link. The
guarantees of a single send hold for every subscriber of the batch."""

import re
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from mailer.mjml import render_email
from subscribers import emails, tasks, tokens
from subscribers.models import Subscriber
from subscribers.tasks import send_confirmations
from tests.factories import SubscriberFactory
from tests.signups import queued_tasks, run_queued_signups

CONFIRM_LINK = re.compile(r"https?://\S+/confirm/\S+/")


def pending(**kwargs) -> Subscriber:
    return SubscriberFactory(status=Subscriber.Status.PENDING, confirmed_at=None, **kwargs)


def path_of(url: str) -> str:
    return urlsplit(url).path


def email_of_today(subscriber: Subscriber, confirm_url: str):
    """The confirmation as a single send renders it for one reader (the template, with the
    reader's own context): what each reader of a batch must receive."""
    return render_email(
        "confirm",
        emails._context(subscriber, confirm_url=confirm_url, valid_days=7),
    )


@pytest.mark.django_db
def test_a_drained_batch_of_sign_ups_is_confirmed_in_one_call_each_reader_their_own_email(
    client, local_provider, settings, django_capture_on_commit_callbacks
):
    settings.SIGNUP_RATE_LIMIT_PER_IP = 10**6
    settings.CONFIRMATION_MAX_AGE = 7 * 24 * 3600
    readers = {
        "ann@example.org": "<b>Ann</b> & Co",
        "o'neil&co@example.org": "Sean",  # characters HTML must escape, in the address itself
        "%recipient.confirm_url%@example.org": "",  # looks like a placeholder: shown as typed
        "dan@example.org": "Dan",
    }
    for email, name in readers.items():
        assert (
            client.post("/subscribe/", {"email": email, "name": name, "frequency": "daily"}).status_code
            == 302
        )
    with django_capture_on_commit_callbacks(execute=True):
        assert run_queued_signups() == len(readers)

    # One confirmation task for the whole batch, naming every reader.
    subscribers = {s.email: s for s in Subscriber.objects.all()}
    [(drain, _, _), (name, args, kwargs)] = queued_tasks()
    assert drain == "subscribers.tasks.process_signups"
    assert name == "subscribers.tasks.send_confirmations" and kwargs == {}
    assert sorted(args[0]) == sorted(s.pk for s in subscribers.values())
    assert send_confirmations.apply(args, kwargs, throw=True).get() == f"{len(readers)} sent"

    stats = local_provider.stats()
    assert (stats["accepted_calls"], stats["messages"]) == (1, len(readers))
    links = {}
    for email, subscriber in subscribers.items():
        [message] = local_provider.messages(to=email)
        assert message["subject"] == f"Please confirm your subscription to {settings.PUBLICATION_NAME}"
        link = CONFIRM_LINK.search(message["text"]).group(0)
        assert (
            tokens.read_token(tokens.Purpose.CONFIRM, link.rstrip("/").rsplit("/", 1)[1]) == subscriber.uuid
        )
        # Byte for byte what a single send gives this reader: their address (escaped in HTML,
        # plain in text), their link, and no name (a typed name is not repeated to a stranger).
        today = email_of_today(subscriber, link)
        assert (message["html"], message["text"]) == (today.html, today.text)
        assert f"at {email}." in message["text"]
        assert message["metadata"] == {"kind": "confirm", "subscriber": str(subscriber.uuid)}
        assert subscriber.name == "" or subscriber.name not in message["html"] + message["text"]
        links[email] = link
    html = local_provider.messages(to="o'neil&co@example.org")[0]["html"]
    assert "o&#x27;neil&amp;co@example.org" in html and "o'neil&co@" not in html
    assert "<b>Ann</b>" not in local_provider.messages(to="ann@example.org")[0]["html"]

    # Each link confirms its reader, and only them.
    reader = Client()
    assert reader.get(path_of(links["dan@example.org"])).status_code == 200
    assert "You are subscribed" in reader.post(path_of(links["dan@example.org"])).content.decode()
    statuses = dict(Subscriber.objects.values_list("email", "status"))
    assert statuses == {
        email: Subscriber.Status.ACTIVE if email == "dan@example.org" else Subscriber.Status.PENDING
        for email in readers
    }


@pytest.mark.django_db
def test_each_subscriber_of_a_batch_is_decided_as_a_single_send_would(local_provider, settings):
    fresh = pending(email="fresh@example.org")
    recent = pending(email="recent@example.org", confirmation_sent_at=timezone.now() - timedelta(minutes=5))
    due = pending(
        email="due@example.org",
        confirmation_sent_at=timezone.now() - timedelta(seconds=settings.CONFIRMATION_RESEND_WINDOW + 60),
    )
    others = {
        status: SubscriberFactory(email=f"{status}@example.org", status=status)
        for status in ("active", "unsubscribed", "bounced", "complained")
    }
    gone = due.pk + 1000
    ids = [fresh.pk, recent.pk, due.pk, *(s.pk for s in others.values()), gone]

    outcomes = emails.send_confirmations(ids)

    assert outcomes == {
        fresh.pk: "sent",
        recent.pk: "recently-sent",
        due.pk: "sent",
        **{s.pk: "not-pending" for s in others.values()},
        gone: "gone",
    }
    assert sorted(m["recipient"] for m in local_provider.messages()) == [
        "due@example.org",
        "fresh@example.org",
    ]
    assert local_provider.stats()["accepted_calls"] == 1
    # The same batch again, at once: the window is taken, nobody is mailed twice.
    assert set(emails.send_confirmations(ids).values()) == {"recently-sent", "not-pending", "gone"}
    assert local_provider.stats()["accepted_calls"] == 1
    # An editor's resend goes through the window, still to pending subscribers only.
    assert emails.send_confirmations(ids, force=True)[recent.pk] == "sent"
    assert len(local_provider.messages(to="recent@example.org")) == 1
    assert local_provider.messages(to="bounced@example.org") == []


@pytest.mark.django_db
def test_the_batch_claim_is_one_guarded_update_that_two_callers_cannot_both_win():
    subscribers = [pending() for _ in range(3)]
    active = SubscriberFactory(status=Subscriber.Status.ACTIVE)
    ids = [s.pk for s in subscribers] + [active.pk]
    first = Subscriber.claim_confirmations(ids, window=3600)
    assert first == sorted(s.pk for s in subscribers)
    assert Subscriber.claim_confirmations(ids, window=3600) == []  # the second caller gets none
    stamps = set(Subscriber.objects.filter(pk__in=first).values_list("confirmation_sent_at", flat=True))
    assert len(stamps) == 1 and None not in stamps
    assert Subscriber.objects.get(pk=active.pk).confirmation_sent_at is None


@pytest.mark.django_db
def test_a_batch_costs_the_same_few_queries_however_many_readers(
    local_provider, django_assert_max_num_queries
):
    ids = [pending().pk for _ in range(40)]
    with django_assert_max_num_queries(2):  # read them, claim them; never a query per reader
        assert set(emails.send_confirmations(ids).values()) == {"sent"}
    assert local_provider.stats()["messages"] == 40


@pytest.mark.django_db
def test_a_transient_failure_keeps_the_claim_and_the_retry_sends_once(local_provider):
    fresh = [pending() for _ in range(3)]
    recent = pending(confirmation_sent_at=timezone.now())
    local_provider.set_faults(outage=True)
    with pytest.raises(emails.TransientEmailError) as failure:
        emails.send_confirmations([*(s.pk for s in fresh), recent.pk])
    # The retry is for the ones this send claimed: their window is taken (not given back).
    assert sorted(failure.value.subscriber_ids) == sorted(s.pk for s in fresh)
    stamps = dict(
        Subscriber.objects.filter(pk__in=failure.value.subscriber_ids).values_list(
            "pk", "confirmation_sent_at"
        )
    )
    assert None not in stamps.values()
    local_provider.clear_faults()
    outcomes = emails.send_confirmations(failure.value.subscriber_ids, claimed=True)
    assert set(outcomes.values()) == {"sent"}
    # Not claimed again: the stamp is the first attempt's.
    assert dict(Subscriber.objects.filter(pk__in=stamps).values_list("pk", "confirmation_sent_at")) == stamps
    assert sorted(m["recipient"] for m in local_provider.messages()) == sorted(s.email for s in fresh)


@pytest.mark.django_db
def test_a_permanent_refusal_is_recorded_on_the_subscribers_of_that_call(local_provider):
    fresh = [pending() for _ in range(2)]
    recent = pending(confirmation_sent_at=timezone.now())
    local_provider.set_faults(error_rate=1.0, status_codes=[400])
    assert send_confirmations.apply(([*(s.pk for s in fresh), recent.pk],), throw=True).get() == "refused"
    errors = dict(Subscriber.objects.values_list("pk", "last_email_error"))
    assert all("confirm email refused by the provider" in errors[s.pk] for s in fresh)
    assert errors[recent.pk] == ""  # not part of the call
    assert local_provider.stats()["rejected_calls"] == 1  # not retried


@pytest.mark.django_db
def test_at_most_provider_batch_size_readers_per_call(local_provider, settings, monkeypatch):
    settings.PROVIDER_BATCH_SIZE = 2
    # The task queues a task per call; here they run at once in this process.
    monkeypatch.setattr(
        send_confirmations,
        "delay",
        lambda *args, **kwargs: send_confirmations.apply(args, kwargs, throw=True),
    )
    ids = [pending().pk for _ in range(5)]
    assert send_confirmations.apply((ids,), throw=True).get() == "split"
    stats = local_provider.stats()
    assert (stats["accepted_calls"], stats["messages"], stats["duplicates"]) == (3, 5, 0)
    with pytest.raises(ValueError):
        emails.send_confirmations(ids)


@pytest.mark.worker
def test_a_provider_outage_is_retried_without_a_new_claim_and_each_reader_gets_one_email(
    celery_worker, local_provider, monkeypatch
):
    monkeypatch.setattr(tasks, "RETRY_BASE_SECONDS", 0.3)
    readers = [pending(email=f"patient{n}@example.org") for n in range(3)]
    local_provider.set_faults(outage_seconds=1.0)
    send_confirmations.delay([s.pk for s in readers])
    messages = local_provider.wait_for(3, timeout=30)
    assert sorted(m["recipient"] for m in messages) == [s.email for s in readers]
    stats = local_provider.stats()
    assert stats["rejected_calls"] >= 1 and stats["accepted_calls"] == 1
    # One claim, by the first attempt (a retry that claimed again would find the window taken
    # and send nothing).
    assert (
        Subscriber.objects.filter(pk__in=[s.pk for s in readers])
        .values("confirmation_sent_at")
        .distinct()
        .count()
        == 1
    )
    time.sleep(0.5)
    assert len(local_provider.messages()) == 3
