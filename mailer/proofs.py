"""Proofs: an edition as one subscriber will see it, in the browser or as a test email.

A proof of a draft or scheduled edition is rendered fresh (never stored, so an edition still
being edited is shown as it stands); once sending has begun, the stored rendering is shown,
exactly as it went out. Either way it is personalised here with ``apply_merge_data``. A test email goes to one address
through the same provider as the real send, with "[TEST]" before the subject, and leaves no
trace in the delivery ledger.
"""

from dataclasses import dataclass

from anymail.exceptions import AnymailError
from anymail.message import AnymailMessage
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from mailer.models import Digest, RenderedSegment
from mailer.rendering import (
    apply_merge_data,
    build_segment,
    parse_segment_key,
    recipient_merge_data,
    sample_merge_data,
    segment_key_for,
)
from subscribers.models import Subscriber

MAX_ADDRESS_LENGTH = 254


class ProofError(Exception):
    """A proof that cannot be made or sent; the message says why, in the editor's words."""


@dataclass(frozen=True)
class Proof:
    subject: str
    html: str
    text: str
    article_count: int


def make_proof(
    digest: Digest, *, segment_key: str = "", name: str = "", subscriber: Subscriber | None = None
) -> Proof:
    """The edition for ``segment_key`` with every placeholder filled: for ``subscriber`` when
    given (their own links), otherwise for a sample reader called ``name``.
    Raises ``rendering.InvalidSegment``."""
    content = None
    if digest.status not in (Digest.Status.DRAFT, Digest.Status.SCHEDULED):
        # Once sending has begun, show what was actually compiled and sent.
        content = RenderedSegment.objects.filter(
            digest_id=digest.pk, segment_key=segment_key_for(parse_segment_key(segment_key))
        ).first()
    if content is None:
        content = build_segment(digest, segment_key)
    if subscriber is not None:
        data = recipient_merge_data(
            subscriber_uuid=subscriber.uuid, name=subscriber.name, digest_id=digest.pk
        )
    else:
        data = sample_merge_data(name=name, digest_id=digest.pk)
    return Proof(
        subject=content.subject,
        html=apply_merge_data(content.html, data),
        text=apply_merge_data(content.text, data),
        article_count=content.article_count,
    )


def clean_address(address: str) -> str:
    """A single email address, or ``ProofError`` (header injection, lists, oversize)."""
    address = (address or "").strip()
    if not address:
        raise ProofError("Give an address to send the test to.")
    if len(address) > MAX_ADDRESS_LENGTH or any(c in address for c in "\r\n,;<>"):
        raise ProofError("That is not a single valid email address.")
    try:
        validate_email(address)
    except ValidationError as exc:
        raise ProofError("That is not a valid email address.") from exc
    return address


def send_proof(digest: Digest, *, to: str, segment_key: str = "", name: str = "") -> str:
    """Send a test of ``digest`` to ``to``; returns the provider's message id.

    Personalised for the subscriber with that address if there is one, otherwise for a sample
    reader. No Delivery row, no change to the edition; sending twice sends two tests.
    Raises ``ProofError`` (bad address, nothing to send, the provider refused).
    """
    to = clean_address(to)
    subscriber = Subscriber.objects.filter(email__iexact=to).first()
    proof = make_proof(digest, segment_key=segment_key, name=name, subscriber=subscriber)
    if not proof.article_count:
        raise ProofError("No article of this edition is in the chosen topics: there is nothing to send.")
    message = AnymailMessage(
        subject=f"[TEST] {proof.subject}",
        body=proof.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers={"List-Id": f"<{settings.LIST_ID}>"},
        tags=["test"],
        metadata={"digest_id": str(digest.pk), "test": "1"},
    )
    message.attach_alternative(proof.html, "text/html")
    try:
        message.send()
    except AnymailError as exc:
        raise ProofError(f"The email provider did not accept the test: {str(exc)[:300]}") from exc
    status = message.anymail_status
    return status.message_id if isinstance(status.message_id, str) else ""
