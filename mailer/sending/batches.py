"""Sending one batch: claim it, re-check its recipients, make the provider call, record the
outcome. The ledger is written before the call and settled after it; see docs/delivery.md."""

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import requests
from anymail.exceptions import AnymailError, AnymailRequestsAPIError
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from urllib3.exceptions import NewConnectionError

from config.logging import bind_log_context
from mailer import ratelimit
from mailer.models import Batch, Delivery, Digest
from mailer.rendering import InvalidSegment, render_segment
from mailer.sending import outage
from mailer.sending.errors import ProviderOutage, TransientProviderError
from mailer.sending.message import Recipient, build_message
from mailer.sending.progress import finish_if_complete
from subscribers.models import Subscriber

log = logging.getLogger(__name__)

# Statuses Anymail reports for a recipient the provider took.
ACCEPTED = {"queued", "sent", "scheduled", "unknown"}
SKIP_REASONS = {
    Subscriber.Status.UNSUBSCRIBED: "Unsubscribed before this batch was sent.",
    Subscriber.Status.BOUNCED: "Address bounced before this batch was sent.",
    Subscriber.Status.COMPLAINED: "Marked an email as spam before this batch was sent.",
    Subscriber.Status.PENDING: "Not confirmed.",
}
NO_ARTICLES = "No article of this edition is in the reader's topics."


class Outcome(StrEnum):
    SENT = "sent"  # the call was made (or nobody was left to send to) and recorded
    DONE = "done"  # already settled earlier: nothing to do
    WAITING = "waiting"  # the edition is paused; resuming queues the batch again
    BUSY = "busy"  # another worker holds the batch; look again in retry_in seconds
    RATE_LIMITED = "rate_limited"  # over the shared rate; try again in retry_in seconds
    FAILED = "failed"  # the provider refused the call for good; deliveries failed with its reason
    CANCELLED = "cancelled"  # the edition was cancelled; deliveries skipped
    UNCERTAIN = "uncertain"  # may have reached the provider; settled from its events


@dataclass(frozen=True)
class BatchResult:
    outcome: Outcome
    sent: int = 0
    retry_in: float | None = None


def send_batch(batch_id: int, *, probe: bool = False) -> BatchResult:
    """Send one sealed batch to its recipients still pending, with a single provider call.

    Exactly once: the batch is claimed by a guarded UPDATE (pending -> submitting, or a
    submitting batch whose lease ran out); recipients already recorded as sent are never sent
    again; a batch found mid-submission is replayed with its idempotency key where the provider
    honours it, and otherwise held as uncertain, never resent blindly. Recipients who are no
    longer active are skipped with the reason. Calling it again after it finished does nothing.

    Raises TransientProviderError (the batch is pending again; retry later) or ProviderOutage
    (the edition has been paused; do not retry). ``probe`` sends even while the edition is
    paused, to test whether the provider is back.
    """
    batch = Batch.objects.select_related("digest").filter(pk=batch_id).first()
    if (
        batch is None
        or not batch.sealed
        or batch.status not in (Batch.Status.PENDING, Batch.Status.SUBMITTING)
    ):
        return BatchResult(Outcome.DONE)
    digest = batch.digest
    bind_log_context(digest_id=digest.pk)  # every line of this batch names its edition too
    if digest.status == Digest.Status.CANCELLED:
        return _cancel(batch)
    sendable = [Digest.Status.SENDING, Digest.Status.PAUSED] if probe else [Digest.Status.SENDING]
    if digest.status not in sendable:
        return BatchResult(Outcome.WAITING)

    now = timezone.now()
    lease = settings.DELIVERY_BATCH_LEASE
    # The edition's status is part of the guard: a pause that lands after the check above
    # still stops this batch; once claimed, a batch is under way and finishes.
    claimed = (
        Batch.objects.filter(pk=batch.pk, digest__status__in=sendable)
        .filter(
            Q(status=Batch.Status.PENDING)
            | Q(status=Batch.Status.SUBMITTING, submitted_at__lt=now - timedelta(seconds=lease))
        )
        .update(status=Batch.Status.SUBMITTING, submitted_at=now, attempts=F("attempts") + 1)
    )
    if not claimed:
        batch.refresh_from_db(fields=["status", "submitted_at"])
        if batch.status == Batch.Status.SUBMITTING and batch.submitted_at:
            left = lease - (now - batch.submitted_at).total_seconds()
            return BatchResult(Outcome.BUSY, retry_in=max(1.0, left + 1))
        if batch.status == Batch.Status.PENDING:  # the edition was paused or cancelled meanwhile
            return BatchResult(Outcome.WAITING)
        return BatchResult(Outcome.DONE)
    # Found mid-submission: the earlier attempt may have reached the provider.
    if batch.status == Batch.Status.SUBMITTING and not settings.PROVIDER_HONOURS_IDEMPOTENCY_KEY:
        _hold_uncertain(
            batch, "Found mid-submission after a worker stopped; reconciling from provider events."
        )
        return BatchResult(Outcome.UNCERTAIN)

    recipients = _recipients_to_send(batch)
    rendering = None
    if recipients:
        try:
            rendering = render_segment(digest, batch.segment_key)
        except InvalidSegment as exc:  # a corrupt segment key: no retry can fix it
            _fail(batch, [r.delivery_id for r in recipients], f"Could not render this edition: {exc}")
            return BatchResult(Outcome.FAILED)
        if rendering.article_count == 0:
            _skip(batch, [r.delivery_id for r in recipients], NO_ARTICLES)
            recipients = []
    if not recipients:
        _record_sent(batch, {})
        return BatchResult(Outcome.SENT, sent=0)

    reservation = ratelimit.reserve(len(recipients), max_wait=max(1.0, min(30.0, lease / 2)))
    if not reservation.granted:
        _release(batch, "")
        return BatchResult(Outcome.RATE_LIMITED, retry_in=reservation.wait)
    if reservation.wait:
        time.sleep(reservation.wait)

    message = build_message(digest=digest, batch=batch, rendering=rendering, recipients=recipients)
    try:
        message.send()
    except AnymailRequestsAPIError as exc:
        return _provider_error(batch, recipients, exc)
    except AnymailError as exc:  # refused before any call (invalid address, serialisation)
        _fail(batch, [r.delivery_id for r in recipients], f"Not sent: {exc}")
        return BatchResult(Outcome.FAILED)

    statuses = message.anymail_status.recipients
    outage.record_success()
    sent = _record_sent(batch, {r.delivery_id: statuses.get(r.email) for r in recipients})
    return BatchResult(Outcome.SENT, sent=sent)


def give_up(batch_id: int, reason: str) -> int:
    """After the last retry: the batch's pending deliveries failed with ``reason`` (an editor
    can retry them). Only a pending batch (not one another worker is sending). Returns how many."""
    with transaction.atomic():
        if not Batch.objects.filter(pk=batch_id, status=Batch.Status.PENDING).update(
            status=Batch.Status.FAILED, finished_at=timezone.now(), last_error=reason
        ):
            return 0
        failed = Delivery.objects.filter(batch_id=batch_id, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.FAILED, error=reason[:500]
        )
    digest_id = Batch.objects.filter(pk=batch_id).values_list("digest_id", flat=True).first()
    finish_if_complete(digest_id)
    return failed


def _recipients_to_send(batch: Batch) -> list[Recipient]:
    """The batch's pending deliveries; those whose subscriber is gone or no longer active are
    skipped with the reason now (an unsubscribe during the send is honoured here)."""
    rows = Delivery.objects.filter(batch=batch, status=Delivery.Status.PENDING).values_list(
        "id", "subscriber__email", "subscriber__uuid", "subscriber__name", "subscriber__status"
    )
    recipients, skipped = [], {}
    for delivery_id, email, uuid, name, status in rows:
        if status == Subscriber.Status.ACTIVE:
            recipients.append(Recipient(delivery_id, email, uuid, name))
        else:
            reason = SKIP_REASONS.get(status, "The subscriber's data was erased.")
            skipped.setdefault(reason, []).append(delivery_id)
    for reason, ids in skipped.items():
        _skip(batch, ids, reason)
    return recipients


def _skip(batch: Batch, delivery_ids: list[int], reason: str) -> None:
    Delivery.objects.filter(pk__in=delivery_ids, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.SKIPPED, error=reason
    )


def _record_sent(batch: Batch, statuses: dict) -> int:
    """Settle the call: accepted recipients sent with their message id, refused ones failed
    with the provider's status, the batch sent. Deliveries move only from pending, so a late
    duplicate of this step changes nothing."""
    now = timezone.now()
    groups: dict[tuple[str, str], list[int]] = {}
    for delivery_id, status in statuses.items():
        key = (status.status or "unknown", status.message_id or "") if status else ("unknown", "")
        groups.setdefault(key, []).append(delivery_id)
    sent = 0
    with transaction.atomic():
        for (status, message_id), ids in groups.items():
            pending = Delivery.objects.filter(pk__in=ids, status=Delivery.Status.PENDING)
            if status in ACCEPTED:
                sent += pending.update(status=Delivery.Status.SENT, message_id=message_id[:255], sent_at=now)
            else:
                pending.update(status=Delivery.Status.FAILED, error=f"Refused by the provider ({status}).")
        Batch.objects.filter(pk=batch.pk, status=Batch.Status.SUBMITTING).update(
            status=Batch.Status.SENT, finished_at=now, last_error=""
        )
    finish_if_complete(batch.digest_id)
    return sent


def _release(batch: Batch, error: str) -> None:
    Batch.objects.filter(pk=batch.pk, status=Batch.Status.SUBMITTING).update(
        status=Batch.Status.PENDING, last_error=error
    )


def _fail(batch: Batch, delivery_ids: list[int], reason: str) -> None:
    with transaction.atomic():
        Delivery.objects.filter(pk__in=delivery_ids, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.FAILED, error=reason[:500]
        )
        Batch.objects.filter(pk=batch.pk, status=Batch.Status.SUBMITTING).update(
            status=Batch.Status.FAILED, finished_at=timezone.now(), last_error=reason
        )
    finish_if_complete(batch.digest_id)


def _hold_uncertain(batch: Batch, reason: str) -> None:
    Batch.objects.filter(pk=batch.pk, status=Batch.Status.SUBMITTING).update(
        status=Batch.Status.UNCERTAIN, last_error=reason
    )
    log.warning("batch held as uncertain", extra={"batch_id": batch.pk, "digest_id": batch.digest_id})


def _cancel(batch: Batch) -> BatchResult:
    reason = "The edition was cancelled."
    with transaction.atomic():
        if Batch.objects.filter(pk=batch.pk, status=Batch.Status.PENDING).update(
            status=Batch.Status.FAILED, finished_at=timezone.now(), last_error=reason
        ):
            Delivery.objects.filter(batch=batch, status=Delivery.Status.PENDING).update(
                status=Delivery.Status.SKIPPED, error=reason
            )
    return BatchResult(Outcome.CANCELLED)


def _may_have_reached_provider(exc: AnymailRequestsAPIError) -> bool:
    """A call that failed without an answer may still have been taken (a read timeout, a reset
    connection); one that never connected was not."""
    if exc.status_code is not None:
        return False
    cause = exc.__cause__
    if isinstance(cause, requests.ConnectTimeout):
        return False
    if isinstance(cause, requests.ConnectionError) and cause.args:
        inner = getattr(cause.args[0], "reason", cause.args[0])
        if isinstance(inner, NewConnectionError):
            return False
    return True


def _provider_error(batch: Batch, recipients: list[Recipient], exc: AnymailRequestsAPIError) -> BatchResult:
    code = exc.status_code
    reason = _describe(exc)
    if code is not None and code < 500 and code not in (408, 429):
        _fail(batch, [r.delivery_id for r in recipients], f"Refused by the provider: {reason}")
        log.warning("batch refused by the provider", extra={"batch_id": batch.pk, "status": code})
        return BatchResult(Outcome.FAILED)
    if not settings.PROVIDER_HONOURS_IDEMPOTENCY_KEY and _may_have_reached_provider(exc):
        _hold_uncertain(batch, f"No answer from the provider ({reason}); reconciling from provider events.")
        return BatchResult(Outcome.UNCERTAIN)
    _release(batch, reason)
    failures = outage.record_transient_failure()
    if outage.is_outage(failures):
        outage.pause_for_outage(batch.digest_id, reason)
        raise ProviderOutage(reason, status_code=code)
    raise TransientProviderError(reason, status_code=code, retry_after=_retry_after(exc))


def _retry_after(exc: AnymailRequestsAPIError) -> float | None:
    """The provider's Retry-After in seconds (the HTTP-date form is rare from APIs: ignored)."""
    value = getattr(getattr(exc, "response", None), "headers", {}).get("Retry-After", "")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds <= 3600 else None


def _describe(exc: AnymailRequestsAPIError) -> str:
    if exc.status_code is None:
        return f"no answer: {type(exc.__cause__ or exc).__name__}"
    message = ""
    try:
        message = str(exc.response.json().get("message", ""))
    except (AttributeError, ValueError):
        message = (getattr(exc.response, "text", "") or "")[:200]
    return f"HTTP {exc.status_code}" + (f": {message}" if message else "")
