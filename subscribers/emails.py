"""The subscribers' own emails (confirmation, welcome): MJML rendered, sent through Anymail.

Only tasks call these; a request never sends email itself.
"""

import logging

from anymail.exceptions import AnymailError, AnymailRequestsAPIError
from anymail.message import AnymailMessage
from django.conf import settings
from django.utils.translation import gettext as _

from mailer.mjml import render_email
from subscribers import tokens
from subscribers.headers import list_unsubscribe
from subscribers.models import Subscriber

log = logging.getLogger(__name__)


class TransientEmailError(Exception):
    """The provider could not take the message now (5xx, 429, no connection): try again later."""


class PermanentEmailError(Exception):
    """The provider refused the message for good (4xx); retrying would fail the same way."""


def is_transient(exc: AnymailError) -> bool:
    if isinstance(exc, AnymailRequestsAPIError):
        status = exc.status_code
        # No status: the request never got an answer (connection refused, timeout).
        return status is None or status >= 500 or status == 429
    return False


def _context(subscriber: Subscriber, **extra) -> dict:
    return {
        "publication_name": settings.PUBLICATION_NAME,
        "publication_url": settings.PUBLICATION_URL,
        "publication_logo_url": settings.PUBLICATION_LOGO_URL,
        "publication_postal_address": settings.PUBLICATION_POSTAL_ADDRESS,
        "subscriber": subscriber,
        "name": subscriber.name,
        **extra,
    }


def _send(subscriber: Subscriber, *, kind: str, subject: str, context: dict, headers=None) -> str:
    rendered = render_email(kind, context)
    message = AnymailMessage(
        subject=subject,
        body=rendered.text,
        to=[subscriber.email],
        headers=headers or {},
        tags=[kind],
        metadata={"kind": kind, "subscriber": str(subscriber.uuid)},
    )
    message.attach_alternative(rendered.html, "text/html")
    try:
        message.send()
    except AnymailError as exc:
        if is_transient(exc):
            raise TransientEmailError(str(exc)) from exc
        reason = f"{kind} email refused by the provider: {exc}"[:300]
        Subscriber.objects.filter(pk=subscriber.pk).update(last_email_error=reason)
        raise PermanentEmailError(reason) from exc
    status = message.anymail_status
    return status.message_id or ""


def send_confirmation(subscriber_id: int, *, claimed: bool = False, force: bool = False) -> str:
    """Send the confirmation email if the subscriber is pending and no confirmation went out
    within CONFIRMATION_RESEND_WINDOW (``force``: an editor asked for it; ``claimed``: a retry
    of a send that already took the window). Returns what happened, for the log:
    "sent", "gone", "not-pending" or "recently-sent". Raises TransientEmailError /
    PermanentEmailError (the latter after recording the reason on the subscriber)."""
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None:
        return "gone"
    if subscriber.status != Subscriber.Status.PENDING:
        if subscriber.status in (Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED):
            log.info("confirmation not sent to suppressed subscriber %s", subscriber.pk)
        return "not-pending"
    if not claimed:
        window = 0 if force else settings.CONFIRMATION_RESEND_WINDOW
        if not subscriber.claim_confirmation(window=window):
            return "recently-sent"
    _send(
        subscriber,
        kind="confirm",
        subject=_("Please confirm your subscription to %(name)s") % {"name": settings.PUBLICATION_NAME},
        context=_context(
            subscriber,
            confirm_url=tokens.confirm_url(subscriber.uuid),
            valid_days=max(1, settings.CONFIRMATION_MAX_AGE // 86400),
        ),
    )
    return "sent"


def send_welcome(subscriber_id: int) -> str:
    """Send the welcome email (with preferences and unsubscribe links) to an active subscriber.
    Returns "sent", "gone" or "not-active"; raises like ``send_confirmation``."""
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None:
        return "gone"
    if subscriber.status != Subscriber.Status.ACTIVE:
        return "not-active"
    links = tokens.recipient_links(subscriber.uuid)
    _send(
        subscriber,
        kind="welcome",
        subject=_("Welcome to %(name)s") % {"name": settings.PUBLICATION_NAME},
        context=_context(
            subscriber,
            topics=list(subscriber.topics.all()),
            frequency=subscriber.get_frequency_display(),
            **links,
        ),
        headers={
            "List-Unsubscribe": list_unsubscribe(links["one_click_url"]),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": f"<{settings.LIST_ID}>",
        },
    )
    return "sent"
