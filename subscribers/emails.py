"""The subscribers' own emails (confirmation, welcome): MJML rendered, sent through Anymail.

Only tasks call these; a request never sends email itself.
"""

import html
import logging
from collections.abc import Iterable

from anymail.exceptions import AnymailError, AnymailRequestsAPIError
from anymail.message import AnymailMessage
from django.conf import settings
from django.utils.translation import gettext as _

from mailer.mjml import RenderedEmail, render_email
from subscribers import tokens
from subscribers.headers import list_unsubscribe
from subscribers.models import Subscriber

log = logging.getLogger(__name__)


class TransientEmailError(Exception):
    """The provider could not take the message now (5xx, 429, no connection): try again later.
    ``subscriber_ids``: the subscribers of the call, whose window the send already took."""

    def __init__(self, message: str, *, subscriber_ids: Iterable[int] = ()):
        super().__init__(message)
        self.subscriber_ids = list(subscriber_ids)


class PermanentEmailError(Exception):
    """The provider refused the message for good (4xx); retrying would fail the same way."""


def is_transient(exc: AnymailError) -> bool:
    if isinstance(exc, AnymailRequestsAPIError):
        status = exc.status_code
        # No status: the request never got an answer (connection refused, timeout).
        return status is None or status >= 500 or status == 429
    return False


def _publication() -> dict:
    return {
        "publication_name": settings.PUBLICATION_NAME,
        "publication_url": settings.PUBLICATION_URL,
        "publication_logo_url": settings.PUBLICATION_LOGO_URL,
        "publication_postal_address": settings.PUBLICATION_POSTAL_ADDRESS,
    }


def _context(subscriber: Subscriber, **extra) -> dict:
    return {
        **_publication(),
        "subscriber": subscriber,
        "name": subscriber.name,
        **extra,
    }


def _deliver(message: AnymailMessage, *, kind: str, subscriber_ids: list[int]) -> str:
    """One provider call for ``subscriber_ids``. A permanent refusal is recorded on each of them."""
    try:
        message.send()
    except AnymailError as exc:
        if is_transient(exc):
            raise TransientEmailError(str(exc), subscriber_ids=subscriber_ids) from exc
        reason = f"{kind} email refused by the provider: {exc}"[:300]
        Subscriber.objects.filter(pk__in=subscriber_ids).update(last_email_error=reason)
        raise PermanentEmailError(reason) from exc
    return message.anymail_status.message_id or ""


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
    return _deliver(message, kind=kind, subscriber_ids=[subscriber.pk])


# --- Confirmation: rendered once per provider call, personalised by the provider ---------------

# The reader's parts of the confirmation email, as merge data: their address (which the email
# names) and their link. The _html values are escaped for the HTML part, as the template would
# escape them; the plain ones go into the text part.
CONFIRMATION_MERGE_KEYS = ("email", "email_html", "confirm_url", "confirm_url_html")


def _merge_field(key: str) -> str:
    return settings.PROVIDER_MERGE_FIELD.format(key)


def confirmation_subject() -> str:
    return _("Please confirm your subscription to %(name)s") % {"name": settings.PUBLICATION_NAME}


def render_confirmation() -> RenderedEmail:
    """The confirmation email with merge placeholders where the reader's address and link go:
    one MJML compilation for a whole batch of readers."""

    def context(suffix: str) -> dict:
        return {
            **_publication(),
            "subscriber": {"email": _merge_field(f"email{suffix}")},
            "confirm_url": _merge_field(f"confirm_url{suffix}"),
            "valid_days": max(1, settings.CONFIRMATION_MAX_AGE // 86400),
        }

    return render_email("confirm", context("_html"), text_context=context(""))


def confirmation_merge_data(subscriber: Subscriber) -> dict[str, str]:
    """The values of the confirmation's placeholders for one reader (one HMAC)."""
    url = tokens.confirm_url(subscriber.uuid)
    return {
        "email": subscriber.email,
        "email_html": html.escape(subscriber.email),
        "confirm_url": url,
        "confirm_url_html": html.escape(url),
    }


def _confirmation_message(recipients: list[Subscriber]) -> AnymailMessage:
    rendered = render_confirmation()
    message = AnymailMessage(
        subject=confirmation_subject(),
        body=rendered.text,
        to=[s.email for s in recipients],
        tags=["confirm"],
    )
    message.attach_alternative(rendered.html, "text/html")
    # Batch sending: each address gets a message of its own, filled from its merge data.
    message.merge_data = {s.email: confirmation_merge_data(s) for s in recipients}
    message.merge_metadata = {s.email: {"kind": "confirm", "subscriber": str(s.uuid)} for s in recipients}
    return message


def send_confirmations(
    subscriber_ids: list[int], *, claimed: bool = False, force: bool = False
) -> dict[int, str]:
    """Send the confirmation email, in one provider call, to each of ``subscriber_ids`` that is
    pending and was sent no confirmation within CONFIRMATION_RESEND_WINDOW (``force``: an editor
    asked for it; ``claimed``: a retry of a send that already took the window for these ids).
    The window is taken with one guarded UPDATE for the batch, so two workers given one
    subscriber never both mail them. At most PROVIDER_BATCH_SIZE ids (ValueError beyond).

    Returns what happened to each id, for the log: "sent", "gone", "not-pending" or
    "recently-sent". Raises TransientEmailError (its ``subscriber_ids``: the ones claimed, to
    retry with ``claimed=True``) or PermanentEmailError (after recording the reason on each
    subscriber of the call)."""
    ids = list(dict.fromkeys(int(pk) for pk in subscriber_ids))
    if len(ids) > settings.PROVIDER_BATCH_SIZE:
        raise ValueError(f"{len(ids)} confirmations for one call, more than PROVIDER_BATCH_SIZE")
    outcomes = dict.fromkeys(ids, "gone")
    found = {s.pk: s for s in Subscriber.objects.filter(pk__in=ids).only("pk", "status", "email", "uuid")}
    pending = []
    for pk, subscriber in found.items():
        if subscriber.status == Subscriber.Status.PENDING:
            pending.append(pk)
            continue
        outcomes[pk] = "not-pending"
        if subscriber.status in (Subscriber.Status.BOUNCED, Subscriber.Status.COMPLAINED):
            log.info("confirmation not sent to suppressed subscriber %s", pk)
    if claimed:
        chosen = pending
    else:
        window = 0 if force else settings.CONFIRMATION_RESEND_WINDOW
        chosen = Subscriber.claim_confirmations(pending, window=window)
        outcomes.update(dict.fromkeys(set(pending) - set(chosen), "recently-sent"))
    if not chosen:
        return outcomes
    recipients = [found[pk] for pk in sorted(chosen)]
    _deliver(_confirmation_message(recipients), kind="confirm", subscriber_ids=[s.pk for s in recipients])
    outcomes.update(dict.fromkeys(chosen, "sent"))
    return outcomes


def send_confirmation(subscriber_id: int, *, claimed: bool = False, force: bool = False) -> str:
    """``send_confirmations`` for one subscriber (an editor's resend, imports, the resend
    command): returns its outcome, raises the same way."""
    return send_confirmations([subscriber_id], claimed=claimed, force=force)[int(subscriber_id)]


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
