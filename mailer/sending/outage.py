"""Provider outages: transient failures in a row, counted for all workers in Redis, pause the
editions being sent; a probe resumes them when the provider answers again."""

import logging

from django.conf import settings

from config.redis_state import client
from mailer.models import Digest
from mailer.sending import queue

log = logging.getLogger(__name__)

FAILURES_KEY = "newsletter:provider:consecutive_failures"
# The start of status_note on an edition paused by an outage (an editor's pause says otherwise),
# so only those are resumed automatically.
OUTAGE_NOTE = "Paused automatically: the provider is not accepting mail"


def record_success() -> None:
    client().delete(FAILURES_KEY)


def record_transient_failure() -> int:
    """Count one transient failure; the number in a row (across all workers)."""
    pipe = client().pipeline()
    pipe.incr(FAILURES_KEY)
    pipe.expire(FAILURES_KEY, 3600)
    count, _ = pipe.execute()
    return int(count)


def is_outage(failures: int) -> bool:
    return settings.PROVIDER_OUTAGE_THRESHOLD > 0 and failures >= settings.PROVIDER_OUTAGE_THRESHOLD


def pause_for_outage(digest_id: int, reason: str, *, probe_in: float | None = None) -> bool:
    """sending -> paused with an outage note, and a probe queued; False (nothing queued) when
    the edition was not sending, so concurrent batches pause it, and probe it, once."""
    note = f"{OUTAGE_NOTE} ({reason[:150]}). Sending resumes by itself when it answers again."
    changed = Digest(pk=digest_id).move(
        Digest.Status.PAUSED, sources=[Digest.Status.SENDING], status_note=note[:300]
    )
    if changed:
        log.warning("edition paused: provider outage", extra={"digest_id": digest_id, "reason": reason})
        queue.queue_probe(
            digest_id, countdown=settings.PROVIDER_OUTAGE_PROBE_SECONDS if probe_in is None else probe_in
        )
    return bool(changed)


def is_paused_for_outage(digest: Digest) -> bool:
    return digest.status == Digest.Status.PAUSED and digest.status_note.startswith(OUTAGE_NOTE)
