"""Queueing delivery tasks by name, after the transaction that made them due commits.

By name rather than by import: the tasks module imports the services, not the other way round.
"""

from collections.abc import Iterable

from django.db import transaction

from worker import app

SEND_BATCH = "mailer.tasks.delivery.send_batch"
START_EDITION = "mailer.tasks.delivery.start_edition"
PROBE_PROVIDER = "mailer.tasks.delivery.probe_provider"


def queue_batches(batch_ids: Iterable[int]) -> None:
    """Queue send_batch for each id once the current transaction commits (at once outside one).
    Queuing a batch twice is harmless: send_batch claims a batch under a guard."""
    ids = list(batch_ids)
    if ids:
        transaction.on_commit(lambda: [app.send_task(SEND_BATCH, args=[pk]) for pk in ids])


def queue_fanout(digest_id: int) -> None:
    transaction.on_commit(lambda: app.send_task(START_EDITION, args=[digest_id]))


def queue_probe(digest_id: int, *, countdown: float) -> None:
    transaction.on_commit(lambda: app.send_task(PROBE_PROVIDER, args=[digest_id], countdown=countdown))
