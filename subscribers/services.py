"""Use cases that change subscribers: sign up, confirm, change preferences, unsubscribe, export
and erase. Views, the API, the admin, imports and tasks call these; none of them writes a
Subscriber or ConsentRecord directly.

Emails are never sent from here: sign-up and confirmation queue a Celery task after the
transaction commits. A reader's sign-up request writes nothing at all: it puts a validated
``Signup`` in the inbox, and the worker stores a batch of them at a time (``process_signups``)
and queues one ``send_confirmations`` task for the batch, so the request does the same work
whether or not the address is known.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DataError, IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from subscribers import signals
from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.models import ConsentRecord, Frequency, Subscriber, Topic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Consent:
    """Where a change came from, for the consent record: the route, the client and the words
    the reader saw."""

    source: str
    ip_address: str | None = None
    user_agent: str = ""
    wording: str = ""
    # When the reader agreed; None means now. A queued sign-up keeps the time of its request.
    at: datetime | None = None


@dataclass(frozen=True)
class Signup:
    """A validated sign-up as the request hands it to the worker. ``as_message`` gives the
    JSON-safe form a Celery task carries; ``from_message`` reads it back."""

    email: str
    consent: Consent
    topic_ids: tuple[int, ...] = ()
    frequency: str = Frequency.DAILY
    name: str = ""

    def as_message(self) -> dict[str, Any]:
        c = self.consent
        return {
            "email": self.email,
            "topic_ids": list(self.topic_ids),
            "frequency": self.frequency,
            "name": self.name,
            "consent": {
                "source": c.source,
                "ip_address": c.ip_address,
                "user_agent": c.user_agent,
                "wording": c.wording,
                "at": (c.at or timezone.now()).isoformat(),
            },
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> "Signup":
        c = message["consent"]
        return cls(
            email=message["email"],
            topic_ids=tuple(int(pk) for pk in message.get("topic_ids", ())),
            frequency=message.get("frequency") or Frequency.DAILY,
            name=message.get("name", ""),
            consent=Consent(
                source=c["source"],
                ip_address=c.get("ip_address"),
                user_agent=c.get("user_agent", ""),
                wording=c.get("wording", ""),
                at=parse_datetime(c["at"]) if c.get("at") else None,
            ),
        )


def _record(subscriber: Subscriber, action: str, consent: Consent, *, wording: str | None = None) -> None:
    ConsentRecord.objects.create(
        subscriber=subscriber,
        action=action,
        source=consent.source,
        ip_address=consent.ip_address or None,
        user_agent=(consent.user_agent or "")[:512],
        wording=consent.wording if wording is None else wording,
        created_at=consent.at or timezone.now(),
    )


def _queue_confirmation(subscriber_id: int, *, force: bool = False) -> None:
    from subscribers.tasks import send_confirmation  # tasks import services

    transaction.on_commit(lambda: send_confirmation.delay(subscriber_id, force=force))


def _queue_confirmations(subscriber_ids: list[int]) -> None:
    from subscribers.tasks import send_confirmations  # tasks import services

    if subscriber_ids:
        transaction.on_commit(lambda: send_confirmations.delay(subscriber_ids))


def _apply_choices(subscriber: Subscriber, *, topics: list[Topic], frequency: str, name: str) -> None:
    Subscriber.objects.filter(pk=subscriber.pk).update(frequency=frequency, name=name)
    subscriber.frequency, subscriber.name = frequency, name
    subscriber.set_topics(topics)


def _store_signup(
    *, email: str, consent: Consent, topics: Iterable[Topic], frequency: str, name: str
) -> Subscriber:
    """``subscribe`` without queueing the confirmation: the caller queues it, and calls this
    inside a transaction (its writes go together)."""
    email = normalise_email(email)
    topics = list(topics)
    name = name.strip()
    subscriber, created = Subscriber.objects.get_or_create(
        email=email,
        defaults={
            "name": name,
            "frequency": frequency,
            "segment_key": Subscriber.segment_key_of(topics),
            "created_at": consent.at or timezone.now(),
        },
    )
    if created:
        subscriber.topics.add(*topics)  # the choices went in with the row; only topics are left
    elif subscriber.status == Subscriber.Status.PENDING or subscriber.reopen():
        _apply_choices(subscriber, topics=topics, frequency=frequency, name=name)
    # Every request is recorded, whatever the status: it is what happened.
    _record(subscriber, ConsentRecord.Action.SUBSCRIBE, consent)
    return subscriber


def subscribe(
    *,
    email: str,
    consent: Consent,
    topics: Iterable[Topic] = (),
    frequency: str = Frequency.DAILY,
    name: str = "",
) -> Subscriber:
    """Sign ``email`` up (double opt-in) and queue ``send_confirmation`` for it.

    By status of an existing address: pending -> the new choices replace the old; unsubscribed
    -> back to pending with the new choices (must confirm again); active -> nothing changes
    (a stranger must not be able to change someone's topics); bounced/complained -> nothing
    changes and the task sends nothing. A consent record of the request is written in every
    case. The task is queued in every case and decides, so the caller cannot tell the cases
    apart, and it sends at most one confirmation per address per
    CONFIRMATION_RESEND_WINDOW. Readers' sign-ups are stored by the worker
    (``process_signups``), never by the request. Raises ``InvalidAddress`` for an address we
    cannot store. Calling it twice is harmless.
    """
    with transaction.atomic():
        subscriber = _store_signup(
            email=email, consent=consent, topics=topics, frequency=frequency, name=name
        )
        _queue_confirmation(subscriber.pk)
    return subscriber


def _signup_choices(signup: Signup, offered: dict[int, Topic] | None = None) -> dict[str, Any]:
    """``subscribe``'s arguments for a sign-up; its topics looked up in ``offered`` (topics by
    id, loaded once for a batch) or else in the database. Topics deleted since are dropped."""
    if offered is not None:
        topics = [offered[pk] for pk in signup.topic_ids if pk in offered]
    else:
        topics = Topic.objects.filter(pk__in=signup.topic_ids) if signup.topic_ids else []
    return {
        "email": signup.email,
        "consent": signup.consent,
        "topics": topics,
        "frequency": signup.frequency,
        "name": signup.name,
    }


def process_signup(signup: Signup) -> Subscriber:
    """The worker's half of a reader's sign-up: ``subscribe`` with the request's choices and
    consent (recorded at the time of the request). Topics deleted since the request are
    dropped. Same guarantees as ``subscribe``: a redelivered task is harmless (one more consent
    record, no second confirmation inside the resend window). Raises ``InvalidAddress``."""
    return subscribe(**_signup_choices(signup))


def process_signups(messages: list[dict[str, Any]]) -> int:
    """A batch of sign-up messages from the inbox (``Signup.as_message``), stored in one
    transaction: each as ``process_signup``, in a savepoint of its own, so a message that
    cannot be stored (an address refused by a changed rule, a malformed message) is logged and
    skipped without undoing the others. Their confirmations are queued as one
    ``send_confirmations`` task for the batch once it commits, naming every stored sign-up
    whatever its address's status (the task decides for each, as ``send_confirmation`` does).
    Database trouble propagates and stores none of them (the inbox keeps the batch). Returns
    how many were stored."""
    signups = []
    for message in messages:
        try:
            signups.append(Signup.from_message(message))
        except (KeyError, TypeError, ValueError, AttributeError):
            log.error("sign-up inbox: skipped a malformed message")
    # The batch's topics in one query, not one per sign-up.
    offered = Topic.objects.in_bulk({pk for signup in signups for pk in signup.topic_ids})
    stored = []
    with transaction.atomic():
        for signup in signups:
            try:
                with transaction.atomic():
                    subscriber = _store_signup(**_signup_choices(signup, offered))
            except (InvalidAddress, DataError, IntegrityError) as exc:
                log.warning("queued sign-up refused: %s", exc)
                continue
            stored.append(subscriber.pk)
        # One id per address: the same address twice in a batch is one confirmation anyway.
        _queue_confirmations(list(dict.fromkeys(stored)))
    return len(stored)


def resend_confirmation(subscriber: Subscriber) -> bool:
    """An editor's explicit resend: queue a confirmation for a pending subscriber even inside
    the resend window. Returns False (nothing queued) when the subscriber is not pending."""
    if subscriber.status != Subscriber.Status.PENDING:
        return False
    _queue_confirmation(subscriber.pk, force=True)
    return True


def confirm(subscriber: Subscriber, *, consent: Consent) -> bool:
    """pending -> active, record the confirmation and queue the welcome email.

    Returns False and changes nothing when the subscriber was not pending (confirming twice,
    or a late click after unsubscribing, is harmless)."""
    from subscribers.tasks import send_welcome

    with transaction.atomic():
        if not subscriber.confirm(at=timezone.now()):
            return False
        _record(
            subscriber,
            ConsentRecord.Action.CONFIRM,
            consent,
            wording=consent.wording or f"Confirmed by the link emailed to {subscriber.email}.",
        )
        transaction.on_commit(lambda: send_welcome.delay(subscriber.pk))
    return True


def describe_choices(subscriber: Subscriber) -> str:
    topics = ", ".join(t.name for t in subscriber.topics.all()) or "all topics"
    return f"Topics: {topics}. Frequency: {subscriber.get_frequency_display()}."


def update_preferences(
    subscriber: Subscriber,
    *,
    topics: Iterable[Topic],
    frequency: str,
    name: str,
    consent: Consent,
) -> None:
    """Replace topics (keeping ``segment_key`` in step), frequency and name, and record the
    change. Topics not offered to readers (set by an editor) are kept: the reader never saw
    them. The status is untouched: preferences never re-activate an unsubscribed reader."""
    with transaction.atomic():
        kept = list(subscriber.topics.filter(is_public=False))
        chosen = [*topics, *kept]
        _apply_choices(subscriber, topics=chosen, frequency=frequency, name=name.strip())
        _record(subscriber, ConsentRecord.Action.CHANGE, consent, wording=describe_choices(subscriber))


def record_editor_change(subscriber: Subscriber, *, editor: str, created: bool) -> None:
    """Record that an editor added the subscriber or changed their choices in the admin."""
    action = ConsentRecord.Action.SUBSCRIBE if created else ConsentRecord.Action.CHANGE
    what = "Added" if created else "Changed"
    wording = f"{what} by an editor ({editor}). {describe_choices(subscriber)}"
    _record(subscriber, action, Consent(source=ConsentRecord.Source.ADMIN), wording=wording)


def unsubscribe(subscriber: Subscriber, *, consent: Consent, digest_id: int | None = None) -> bool:
    """pending/active -> unsubscribed, at once: the status guard is what every send checks.

    Records the withdrawal and then sends ``signals.unsubscribed`` (subscriber, digest_id, at).
    Returns False and does nothing (no record, no signal) when already out."""
    at = timezone.now()
    with transaction.atomic():
        if not subscriber.unsubscribe(at=at):
            return False
        _record(
            subscriber,
            ConsentRecord.Action.UNSUBSCRIBE,
            consent,
            wording=consent.wording or "Unsubscribed from every newsletter.",
        )
    signals.unsubscribed.send(sender=Subscriber, subscriber=subscriber, digest_id=digest_id, at=at)
    return True


def _delivery_history(subscriber: Subscriber) -> list[dict[str, Any]]:
    # Through the reverse relation, so that subscribers does not import mailer.
    related = getattr(subscriber, "delivery_set", None)
    if related is None:
        return []
    skip = {"id", "subscriber", "batch"}
    fields = [f.attname for f in related.model._meta.concrete_fields if f.name not in skip]
    return list(related.order_by("id").values(*fields, "digest__subject"))


def export_data(subscriber: Subscriber) -> dict[str, Any]:
    """Everything stored about the subscriber, as JSON-ready data (dates stay datetimes; encode
    with DjangoJSONEncoder): the subscription, topics, consent records and delivery history."""
    return {
        "subscriber": {
            "email": subscriber.email,
            "name": subscriber.name,
            "status": subscriber.status,
            "frequency": subscriber.frequency,
            "language": subscriber.language,
            "created_at": subscriber.created_at,
            "confirmed_at": subscriber.confirmed_at,
            "unsubscribed_at": subscriber.unsubscribed_at,
            "confirmation_sent_at": subscriber.confirmation_sent_at,
            "suppressed_reason": subscriber.suppressed_reason,
        },
        "topics": [{"slug": t.slug, "name": t.name} for t in subscriber.topics.all()],
        "consent_records": [
            {
                "action": c.action,
                "source": c.source,
                "at": c.created_at,
                "ip_address": c.ip_address,
                "user_agent": c.user_agent,
                "wording": c.wording,
            }
            for c in subscriber.consents.all()
        ],
        "deliveries": _delivery_history(subscriber),
    }


def erase(subscriber: Subscriber) -> None:
    """Delete the subscriber and their consent records (GDPR erasure). Delivery rows keep the
    edition's figures with the subscriber set to NULL, so nothing left names them. Erasing an
    already erased subscriber is a no-op."""
    with transaction.atomic():
        Subscriber.objects.filter(pk=subscriber.pk).delete()
