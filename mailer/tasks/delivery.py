"""Celery tasks of the delivery engine: thin shells over mailer.sending that decide retries.

Every task is acks_late and rejected back to the queue when its worker dies, so a SIGKILLed
worker's tasks run again elsewhere; the services make a second run harmless.
"""

import logging
import random

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from config.logging import log_context
from mailer import sending

log = logging.getLogger(__name__)

TASK_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}
# The database connection lost mid-task (failover, restart, a cut session): the task ran and
# failed, so its message is acknowledged; only a retry brings the work back (a claimed batch
# is taken over once its lease runs out, replayed with its idempotency key).
DATABASE_LOST = (OperationalError, InterfaceError)


def backoff(retries: int) -> float:
    """Seconds before retry number ``retries + 1``: exponential, capped, with "equal jitter"
    (half fixed, half random) so batches that failed together do not come back together."""
    ceiling = min(settings.DELIVERY_RETRY_BACKOFF_MAX, settings.DELIVERY_RETRY_BACKOFF_MS / 1000 * 2**retries)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@shared_task(
    name="mailer.tasks.delivery.start_edition",
    autoretry_for=DATABASE_LOST,
    retry_backoff=1,
    retry_backoff_max=60,
    max_retries=None,
    **TASK_OPTIONS,
)
def start_edition(digest_id: int) -> None:
    """Fan an edition out into its ledger and queue its batches (resumes a killed fan-out)."""
    with log_context(digest_id=digest_id):
        result = sending.start_edition(digest_id)
        log.info(
            "fan-out finished", extra={"recipients": result.recipients, "batches": result.batches_queued}
        )


@shared_task(bind=True, name="mailer.tasks.delivery.send_batch", max_retries=None, **TASK_OPTIONS)
def send_batch(self, batch_id: int) -> str:
    """Send one batch. Transient provider errors retry with backoff up to
    settings.DELIVERY_MAX_RETRIES, then its deliveries fail with the reason; a provider outage
    leaves the batch to the edition's resume; a busy or rate-limited batch comes back later."""
    with log_context(batch_id=batch_id):
        try:
            result = sending.send_batch(batch_id)
        except sending.ProviderOutage:
            return "outage"
        except DATABASE_LOST as exc:
            log.warning("database connection lost, retrying", extra={"error": str(exc)[:200]})
            raise self.retry(countdown=backoff(self.request.retries)) from exc
        except sending.TransientProviderError as exc:
            if self.request.retries >= settings.DELIVERY_MAX_RETRIES:
                attempts = self.request.retries + 1
                sending.give_up(
                    batch_id, f"The provider kept failing ({exc.reason}); gave up after {attempts} attempts."
                )
                return "gave up"
            log.info("transient provider error, retrying", extra={"reason": exc.reason})
            # Never sooner than the provider asked (Retry-After on a 429 or 503).
            countdown = max(backoff(self.request.retries), exc.retry_after or 0)
            raise self.retry(countdown=countdown) from exc
        if result.retry_in is not None:
            # Not a failure: a fresh message, so the wait does not use up the retries.
            send_batch.apply_async(args=[batch_id], countdown=result.retry_in)
        return result.outcome.value


@shared_task(name="mailer.tasks.delivery.probe_provider", **TASK_OPTIONS)
def probe_provider(digest_id: int, attempt: int = 0) -> bool:
    """Try an outage-paused edition's provider again; on failure, probe later (backing off)."""
    with log_context(digest_id=digest_id):
        if sending.probe_provider(digest_id):
            return True
        countdown = min(settings.PROVIDER_OUTAGE_PROBE_SECONDS * 2 ** min(attempt + 1, 6), 1800)
        probe_provider.apply_async(args=[digest_id, attempt + 1], countdown=countdown)
        return False


@shared_task(name="mailer.tasks.delivery.sweep", **TASK_OPTIONS)
def sweep() -> dict[str, int]:
    """Beat's minute housekeeping: stuck and uncertain batches, editions to close."""
    result = sending.sweep()
    if any(result.values()):
        log.info("delivery sweep", extra=result)
    return result
