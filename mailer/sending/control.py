"""Editors' controls over a running edition (pause, resume, retry the failed) and the
housekeeping that keeps editions moving by themselves (outage probes, stuck and uncertain
batches)."""

import logging
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from mailer.models import Batch, Delivery, Digest
from mailer.sending import outage, queue
from mailer.sending.batches import Outcome, send_batch
from mailer.sending.errors import TransientProviderError
from mailer.sending.fanout import requeue_pending_batches
from mailer.sending.progress import finish_if_complete
from subscribers.models import Subscriber

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
# An edition with no batch claimed or finished for this long has lost its queued tasks.
STALLED_AFTER = timedelta(minutes=10)


def pause_edition(digest_id: int) -> bool:
    """sending -> paused (by an editor). Batches not yet claimed wait; a batch already with the
    provider finishes. Returns False (nothing changes) when the edition was not sending."""
    return Digest(pk=digest_id).move(
        Digest.Status.PAUSED, sources=[Digest.Status.SENDING], status_note="Paused by an editor."
    )


def resume_edition(digest_id: int) -> bool:
    """paused -> sending, however it was paused: its waiting batches are queued again (and an
    unfinished fan-out carries on). Returns False (nothing changes) when it was not paused."""
    with transaction.atomic():
        if not Digest(pk=digest_id).move(
            Digest.Status.SENDING, sources=[Digest.Status.PAUSED], status_note=""
        ):
            return False
        if Digest.objects.filter(pk=digest_id, fanout_done=False).exists():
            queue.queue_fanout(digest_id)
        requeue_pending_batches(digest_id)
    finish_if_complete(digest_id)
    return True


def retry_failed(digest_id: int) -> int:
    """Send the edition again to its failed recipients only (those still active), in new batches
    with new idempotency keys; the edition is sending again until they settle. Sent and skipped
    recipients are never touched. Returns how many deliveries were queued again."""
    S = Delivery.Status
    retried, after = 0, 0
    while True:
        with transaction.atomic():
            rows = list(
                Delivery.objects.filter(
                    digest_id=digest_id,
                    status=S.FAILED,
                    subscriber__status=Subscriber.Status.ACTIVE,
                    id__gt=after,
                )
                .order_by("id")
                .values_list("id", "subscriber__segment_key")[:PAGE_SIZE]
            )
            if not rows:
                break
            after = rows[-1][0]
            by_segment: dict[str, list[int]] = defaultdict(list)
            for delivery_id, segment_key in rows:
                by_segment[segment_key].append(delivery_id)
            number = Batch.objects.filter(digest_id=digest_id).aggregate(n=Max("number"))["n"] or 0
            size = max(1, settings.PROVIDER_BATCH_SIZE)
            new_batches = []
            for segment_key, ids in by_segment.items():
                for start in range(0, len(ids), size):
                    number += 1
                    chunk = ids[start : start + size]
                    batch = Batch.objects.create(
                        digest_id=digest_id,
                        number=number,
                        segment_key=segment_key,
                        recipient_count=len(chunk),
                        sealed=True,
                    )
                    retried += Delivery.objects.filter(pk__in=chunk, status=S.FAILED).update(
                        status=S.PENDING, error="", batch=batch
                    )
                    new_batches.append(batch.pk)
            Digest(pk=digest_id).move(
                Digest.Status.SENDING, sources=[Digest.Status.SENT, Digest.Status.FAILED], finished_at=None
            )
            queue.queue_batches(new_batches)
    return retried


def probe_provider(digest_id: int) -> bool:
    """For an edition paused by an outage: send one waiting batch; when the provider takes it,
    resume the edition. Returns True when the edition is no longer paused for an outage (resumed,
    or an editor has taken over); False when the provider still fails (probe again later)."""
    digest = Digest.objects.filter(pk=digest_id).first()
    if digest is None or not outage.is_paused_for_outage(digest):
        return True
    batch_id = (
        Batch.objects.filter(digest_id=digest_id, status=Batch.Status.PENDING, sealed=True)
        .order_by("id")
        .values_list("id", flat=True)
        .first()
    )
    if batch_id is not None:
        try:
            result = send_batch(batch_id, probe=True)
        except TransientProviderError:
            return False
        if result.outcome not in (Outcome.SENT, Outcome.FAILED, Outcome.DONE):
            return False
    log.info("provider answers again: resuming edition", extra={"digest_id": digest_id})
    outage.record_success()
    resume_edition(digest_id)
    return True


def reconcile_uncertain(*, older_than: timedelta | None = None) -> int:
    """Uncertain batches whose reconcile window is over: recipients the provider's events have
    not shown to be sent are marked failed with the reason (never resent blindly; an editor can
    retry them). Returns how many deliveries were failed."""
    if older_than is None:
        older_than = timedelta(seconds=settings.DELIVERY_RECONCILE_SECONDS)
    reason = (
        "Uncertain: the provider may have taken this message (no answer, or a worker stopped "
        "mid-call) but sent no event for it. Retry only if the reader did not get it."
    )
    failed = 0
    stale = Batch.objects.filter(status=Batch.Status.UNCERTAIN, submitted_at__lt=timezone.now() - older_than)
    for batch_id, digest_id in stale.values_list("id", "digest_id")[:PAGE_SIZE]:
        with transaction.atomic():
            if not Batch.objects.filter(pk=batch_id, status=Batch.Status.UNCERTAIN).update(
                status=Batch.Status.FAILED, finished_at=timezone.now()
            ):
                continue
            failed += Delivery.objects.filter(batch_id=batch_id, status=Delivery.Status.PENDING).update(
                status=Delivery.Status.FAILED, error=reason
            )
        finish_if_complete(digest_id)
    return failed


def sweep() -> dict[str, int]:
    """Run by beat every minute: batches held by a worker that died past their lease are queued
    again, uncertain batches past their window are settled, editions whose last batch ended
    without closing them are closed, and editions that have stalled (their queued tasks lost,
    say with a Redis restart) are started moving again. Cheap when there is nothing to do."""
    lease = timezone.now() - timedelta(seconds=settings.DELIVERY_BATCH_LEASE)
    stuck = list(
        Batch.objects.filter(
            status=Batch.Status.SUBMITTING, submitted_at__lt=lease, digest__status=Digest.Status.SENDING
        ).values_list("id", flat=True)[:PAGE_SIZE]
    )
    queue.queue_batches(stuck)
    failed = reconcile_uncertain()
    finished = sum(
        finish_if_complete(pk)
        for pk in Digest.objects.filter(status=Digest.Status.SENDING, fanout_done=True).values_list(
            "pk", flat=True
        )
    )
    cancelled = sum(
        settle_cancelled(pk)
        for pk in Digest.objects.filter(status=Digest.Status.CANCELLED, batches__status=Batch.Status.PENDING)
        .values_list("pk", flat=True)
        .distinct()
    )
    return {
        "requeued": len(stuck),
        "uncertain_failed": failed,
        "finished": finished,
        "cancelled_skipped": cancelled,
        **restart_stalled(),
    }


def settle_cancelled(digest_id: int) -> int:
    """A cancelled edition's batches not yet sent are closed and their deliveries skipped
    ("The edition was cancelled."), so its figures add up. A batch already under way finishes.
    Returns how many deliveries were skipped; nothing for an edition that is not cancelled."""
    reason = "The edition was cancelled."
    skipped = 0
    with transaction.atomic():
        if not Digest.objects.filter(pk=digest_id, status=Digest.Status.CANCELLED).exists():
            return 0
        pending = Batch.objects.filter(digest_id=digest_id, status=Batch.Status.PENDING)
        ids = list(pending.values_list("id", flat=True))
        pending.filter(pk__in=ids).update(
            status=Batch.Status.FAILED, finished_at=timezone.now(), last_error=reason
        )
        skipped = Delivery.objects.filter(
            digest_id=digest_id, batch_id__in=ids, status=Delivery.Status.PENDING
        ).update(status=Delivery.Status.SKIPPED, error=reason)
    return skipped


def restart_stalled(*, quiet_for: timedelta = STALLED_AFTER) -> dict[str, int]:
    """Editions with no batch claimed or finished for ``quiet_for``: a sending one gets its
    unfinished fan-out and its pending batches queued again, an outage-paused one a probe.
    Queueing twice is harmless (every task is guarded), so this only costs a few messages."""
    since = timezone.now() - quiet_for
    restarted = probed = 0
    live = Digest.objects.filter(
        status__in=[Digest.Status.SENDING, Digest.Status.PAUSED], started_at__lt=since
    ).annotate(last_claim=Max("batches__submitted_at"), last_end=Max("batches__finished_at"))
    for digest in live:
        if max(filter(None, (digest.last_claim, digest.last_end, digest.started_at))) >= since:
            continue
        if digest.status == Digest.Status.SENDING:
            if not digest.fanout_done:
                queue.queue_fanout(digest.pk)
            restarted += bool(requeue_pending_batches(digest.pk)) or not digest.fanout_done
        elif outage.is_paused_for_outage(digest):
            queue.queue_probe(digest.pk, countdown=0)
            probed += 1
    return {"restarted": restarted, "probed": probed}
