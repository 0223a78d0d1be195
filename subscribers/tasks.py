"""Celery tasks of the subscribers app: thin, they load ids and call services.

Provider trouble that may pass (5xx, 429, no connection) is retried with exponential backoff
and jitter; a permanent refusal is recorded on the subscriber by the email module and ends the
task.
"""

import logging
import random
from collections import Counter

import redis
from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from subscribers import emails, inbox, services
from subscribers.addresses import InvalidAddress

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 10
RETRY_MAX_SECONDS = 600  # below the broker's visibility timeout, so a waiting retry is not redelivered
MAX_RETRIES = 8


def backoff(retries: int) -> float:
    delay = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2**retries)
    return delay * random.uniform(0.5, 1.0)


@shared_task(bind=True, max_retries=MAX_RETRIES, acks_late=True)
def send_confirmation(self, subscriber_id: int, force: bool = False, claimed: bool = False) -> str:
    try:
        return emails.send_confirmation(subscriber_id, claimed=claimed, force=force)
    except emails.TransientEmailError as exc:
        # The window is already taken by this send; the retry must not ask for it again.
        raise self.retry(
            exc=exc,
            countdown=backoff(self.request.retries),
            args=(subscriber_id,),
            kwargs={"force": force, "claimed": True},
        ) from exc
    except emails.PermanentEmailError as exc:
        log.warning("confirmation for subscriber %s refused: %s", subscriber_id, exc)
        return "refused"


@shared_task(bind=True, max_retries=MAX_RETRIES, acks_late=True)
def send_confirmations(self, subscriber_ids: list[int], force: bool = False, claimed: bool = False) -> str:
    """The confirmations of a batch of sign-ups, one provider call per PROVIDER_BATCH_SIZE."""
    size = settings.PROVIDER_BATCH_SIZE
    if len(subscriber_ids) > size:  # queued for more than one call: a task per call
        for start in range(0, len(subscriber_ids), size):
            send_confirmations.delay(subscriber_ids[start : start + size], force=force, claimed=claimed)
        return "split"
    try:
        outcomes = emails.send_confirmations(subscriber_ids, claimed=claimed, force=force)
    except emails.TransientEmailError as exc:
        # Only the ones this send claimed are retried, and without asking for the window again.
        raise self.retry(
            exc=exc,
            countdown=backoff(self.request.retries),
            args=(exc.subscriber_ids,),
            kwargs={"force": force, "claimed": True},
        ) from exc
    except emails.PermanentEmailError as exc:
        log.warning("confirmations for %d subscribers refused: %s", len(subscriber_ids), exc)
        return "refused"
    counts = Counter(outcomes.values())
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))


@shared_task(bind=True, max_retries=MAX_RETRIES, acks_late=True)
def send_welcome(self, subscriber_id: int) -> str:
    try:
        return emails.send_welcome(subscriber_id)
    except emails.TransientEmailError as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    except emails.PermanentEmailError as exc:
        log.warning("welcome for subscriber %s refused: %s", subscriber_id, exc)
        return "refused"


@shared_task(bind=True, max_retries=MAX_RETRIES, acks_late=True)
def process_signup(self, signup: dict) -> str:
    """One sign-up queued as a task of its own, as requests did before the inbox: kept so that
    such messages, still queued when a new version starts, are stored too."""
    try:
        services.process_signup(services.Signup.from_message(signup))
    except OperationalError as exc:  # the database is away for a moment; the sign-up is not lost
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    except InvalidAddress as exc:  # validated by the request already; only a changed rule lands here
        log.warning("queued sign-up refused: %s", exc)
        return "refused"
    return "done"


def queue_signup(message: dict) -> None:
    """Put a sign-up message in the inbox; the first one after a quiet spell queues the drain."""
    if inbox.append(message):
        process_signups.apply_async()


@shared_task(bind=True, max_retries=MAX_RETRIES, acks_late=True)
def process_signups(self) -> str:
    """Store the sign-ups waiting in the inbox, a batch per transaction (``inbox.drain``).
    Queued by the first sign-up after a quiet spell and by beat every minute."""
    try:
        stored = inbox.drain(services.process_signups)
    except (OperationalError, redis.RedisError) as exc:  # the batch stays in the inbox
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    return "another drain is running" if stored is None else f"{stored} stored"
