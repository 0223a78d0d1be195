"""Celery tasks of the subscribers app: thin, they load ids and call services.

Provider trouble that may pass (5xx, 429, no connection) is retried with exponential backoff
and jitter; a permanent refusal is recorded on the subscriber by the email module and ends the
task.
"""

import logging
import random

from celery import shared_task

from subscribers import emails

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
def send_welcome(self, subscriber_id: int) -> str:
    try:
        return emails.send_welcome(subscriber_id)
    except emails.TransientEmailError as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    except emails.PermanentEmailError as exc:
        log.warning("welcome for subscriber %s refused: %s", subscriber_id, exc)
        return "refused"
