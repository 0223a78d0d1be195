"""What the provider tells us after sending: Anymail's tracking events (already authenticated
by Anymail's webhook view: basic auth and the provider's signature) update the ledger and the
subscriber. Receivers are connected in MailerConfig.ready().

Events for messages we do not know are accepted and ignored (the provider gets its 200), and
every update is guarded, so an event posted twice changes nothing the second time.
"""

import logging
from enum import StrEnum

from anymail.signals import AnymailTrackingEvent, EventType, RejectReason
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from config.redis_state import client
from mailer.models import Batch, Delivery
from subscribers.models import ConsentRecord, Subscriber

log = logging.getLogger(__name__)

# Event -> the Delivery timestamp it sets (first time only).
TIMESTAMPS = {
    EventType.DELIVERED: "delivered_at",
    EventType.OPENED: "opened_at",
    EventType.CLICKED: "clicked_at",
    EventType.BOUNCED: "bounced_at",
    EventType.COMPLAINED: "complained_at",
    EventType.UNSUBSCRIBED: "unsubscribed_at",
}
SEEN_EVENT_TTL = 7 * 24 * 3600


class Result(StrEnum):
    IGNORED = "ignored"  # not one of our deliveries (or not an event we act on)
    DUPLICATE = "duplicate"  # this event id was handled before
    RECORDED = "recorded"


def on_tracking(sender, event: AnymailTrackingEvent, esp_name: str, **kwargs) -> None:
    """anymail.signals.tracking receiver."""
    record_event(event)


def on_unsubscribed(sender, subscriber, digest_id=None, at=None, **kwargs) -> None:
    """subscribers.signals.unsubscribed receiver: credit the edition the link came from."""
    if digest_id is not None and subscriber is not None:
        Delivery.objects.filter(
            digest_id=digest_id, subscriber_id=subscriber.pk, unsubscribed_at__isnull=True
        ).update(unsubscribed_at=at or timezone.now())


def record_event(event: AnymailTrackingEvent) -> Result:
    """Apply one tracking event. Delivered, opened, clicked, bounced, complained and
    unsubscribed set the delivery's timestamp once. A hard bounce or a complaint suppresses the
    subscriber at once; soft bounces (deferrals) count, and settings.SOFT_BOUNCE_LIMIT of them in
    a row suppress (a delivery in between resets the count); an unsubscribe through the provider
    unsubscribes. Any event proves an uncertain delivery reached the provider: it is recorded sent.
    """
    delivery = find_delivery(event)
    if delivery is None:
        log.info("tracking event for an unknown message ignored", extra={"event": event.event_type})
        return Result.IGNORED
    if event.event_id and not _first_sighting(event.event_id):
        return Result.DUPLICATE
    at = event.timestamp or timezone.now()
    _reconcile(delivery, event, at)

    field = TIMESTAMPS.get(event.event_type)
    if field:
        Delivery.objects.filter(pk=delivery.pk, **{f"{field}__isnull": True}).update(**{field: at})
    subscriber = delivery.subscriber
    if subscriber is None:
        return Result.RECORDED
    kind = event.event_type
    if kind == EventType.REJECTED and event.reject_reason in (RejectReason.BOUNCED, RejectReason.INVALID):
        kind = EventType.BOUNCED
    if kind == EventType.REJECTED:
        Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENT).update(
            status=Delivery.Status.FAILED, error=_reason("Rejected by the provider", event)
        )
    elif kind == EventType.BOUNCED:
        subscriber.suppress(status=Subscriber.Status.BOUNCED, reason=_reason("Hard bounce", event))
    elif kind == EventType.COMPLAINED:
        subscriber.suppress(status=Subscriber.Status.COMPLAINED, reason="Marked a newsletter as spam.")
    elif kind == EventType.DEFERRED:
        _soft_bounce(subscriber, event)
    elif kind == EventType.DELIVERED:
        Subscriber.objects.filter(pk=subscriber.pk, soft_bounces__gt=0).update(soft_bounces=0)
    elif kind == EventType.UNSUBSCRIBED:
        _unsubscribe(subscriber, delivery.digest_id)
    return Result.RECORDED


def find_delivery(event: AnymailTrackingEvent) -> Delivery | None:
    """Our delivery for an event: by the delivery id the batch call put in each recipient's
    metadata (checked against the recipient), else by message id and recipient (a batch shares
    one message id at Mailgun)."""
    recipient = (event.recipient or "").strip().lower()
    raw_id = (event.metadata or {}).get("delivery_id")
    # ASCII digits that fit a bigint: str.isdigit() also takes "²", which int() refuses.
    if isinstance(raw_id, str) and raw_id.isascii() and raw_id.isdigit() and len(raw_id) <= 18:
        delivery = Delivery.objects.select_related("subscriber").filter(pk=int(raw_id)).first()
        if delivery and (delivery.subscriber is None or delivery.subscriber.email.lower() == recipient):
            return delivery
    if event.message_id and recipient:
        return (
            Delivery.objects.select_related("subscriber")
            .filter(message_id=event.message_id, subscriber__email__iexact=recipient)
            .first()
        )
    return None


def _reconcile(delivery: Delivery, event: AnymailTrackingEvent, at) -> None:
    if delivery.status != Delivery.Status.PENDING:
        return
    if not Batch.objects.filter(pk=delivery.batch_id, status=Batch.Status.UNCERTAIN).exists():
        return
    Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.SENT, sent_at=at, message_id=(event.message_id or "")[:255]
    )
    log.info("uncertain delivery reconciled as sent", extra={"delivery_id": delivery.pk})


def _soft_bounce(subscriber: Subscriber, event: AnymailTrackingEvent) -> None:
    Subscriber.objects.filter(pk=subscriber.pk).update(soft_bounces=F("soft_bounces") + 1)
    count = Subscriber.objects.filter(pk=subscriber.pk).values_list("soft_bounces", flat=True).first() or 0
    if count >= settings.SOFT_BOUNCE_LIMIT:
        subscriber.suppress(
            status=Subscriber.Status.BOUNCED,
            reason=_reason(f"{count} soft bounces in a row", event),
        )


def _unsubscribe(subscriber: Subscriber, digest_id: int) -> None:
    from subscribers import services  # the subscribers app's use case: records consent, signals

    services.unsubscribe(
        subscriber,
        consent=services.Consent(
            source=ConsentRecord.Source.PROVIDER,
            wording="Unsubscribed through the email provider's unsubscribe link.",
        ),
        digest_id=digest_id,
    )


def _reason(prefix: str, event: AnymailTrackingEvent) -> str:
    detail = " ".join(str(event.mta_response or event.description or "").split())
    return f"{prefix}: {detail}"[:300] if detail else prefix


def _first_sighting(event_id: str) -> bool:
    return bool(client().set(f"newsletter:tracking-event:{event_id[:100]}", 1, nx=True, ex=SEEN_EVENT_TTL))
