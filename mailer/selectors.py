"""Read queries of the delivery engine used by more than one caller: who an edition goes to,
and how its sending went."""

from datetime import datetime
from typing import Any

from django.db.models import Count, Max, Q
from django.utils import timezone

from mailer.models import Batch, Delivery, Digest
from subscribers.models import Subscriber


def eligible_recipients(digest: Digest, *, after_id: int, limit: int) -> list[tuple[int, str]]:
    """The next ``limit`` subscribers an edition goes to, as (id, segment_key), with ids above
    ``after_id`` in id order: a keyset page over the (status, frequency, id) index, so each page
    costs the same however far into the list it is."""
    return list(
        Subscriber.objects.filter(
            status=Subscriber.Status.ACTIVE, frequency=digest.frequency, id__gt=after_id
        )
        .order_by("id")
        .values_list("id", "segment_key")[:limit]
    )


def batch_ids(digest_id: int, *, statuses: list[str], after_id: int = 0, limit: int = 1000) -> list[int]:
    """A keyset page of an edition's sealed batch ids in the given statuses."""
    return list(
        Batch.objects.filter(digest_id=digest_id, status__in=statuses, sealed=True, id__gt=after_id)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )


def edition_figures(digest_id: int) -> dict[str, Any]:
    """How an edition's sending stands, from its ledger, in one query.

    ``total`` = ``pending`` + ``sent`` + ``failed`` + ``skipped`` always. ``delivered``,
    ``bounced``, ``complained``, ``opened``, ``clicked`` and ``unsubscribed`` count deliveries
    with that provider event. ``rate_per_second`` is messages sent per second from the start of
    sending to the last send (or now, while it runs); 0 before anything was sent.
    """
    S = Delivery.Status
    figures = Delivery.objects.filter(digest_id=digest_id).aggregate(
        total=Count("id"),
        pending=Count("id", filter=Q(status=S.PENDING)),
        sent=Count("id", filter=Q(status=S.SENT)),
        failed=Count("id", filter=Q(status=S.FAILED)),
        skipped=Count("id", filter=Q(status=S.SKIPPED)),
        delivered=Count("id", filter=Q(delivered_at__isnull=False)),
        bounced=Count("id", filter=Q(bounced_at__isnull=False)),
        complained=Count("id", filter=Q(complained_at__isnull=False)),
        opened=Count("id", filter=Q(opened_at__isnull=False)),
        clicked=Count("id", filter=Q(clicked_at__isnull=False)),
        unsubscribed=Count("id", filter=Q(unsubscribed_at__isnull=False)),
        last_sent_at=Max("sent_at"),
    )
    digest = Digest.objects.filter(pk=digest_id).values("started_at", "finished_at", "status").first() or {}
    started_at: datetime | None = digest.get("started_at")
    finished_at: datetime | None = digest.get("finished_at")
    last_sent_at = figures.pop("last_sent_at")
    rate = 0.0
    if started_at and figures["sent"]:
        until = last_sent_at if digest.get("status") != Digest.Status.SENDING else timezone.now()
        elapsed = max((until - started_at).total_seconds(), 0.001)
        rate = round(figures["sent"] / elapsed, 1)
    figures.update(rate_per_second=rate, started_at=started_at, finished_at=finished_at)
    return figures


def failed_deliveries(digest_id: int, *, after_id: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """A keyset page of an edition's failed recipients with the reason, for the editors."""
    return list(
        Delivery.objects.filter(digest_id=digest_id, status=Delivery.Status.FAILED, id__gt=after_id)
        .order_by("id")
        .values("id", "subscriber_id", "subscriber__email", "error", "batch_id")[:limit]
    )
