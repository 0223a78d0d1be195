"""One provider call per batch: an AnymailMessage using batch sending, with each recipient's
merge data, merge metadata and headers. The only place that knows what goes into the call."""

from dataclasses import dataclass
from uuid import UUID

from anymail.message import AnymailMessage
from django.conf import settings

from mailer.models import Batch, Digest, RenderedSegment
from mailer.rendering import recipient_merge_data
from subscribers.headers import header_safe, list_unsubscribe, mailto_suffix


@dataclass(frozen=True)
class Recipient:
    delivery_id: int
    email: str
    uuid: UUID
    name: str


def list_id() -> str:
    """RFC 2919 List-Id: the publication's name and the list's identifier."""
    name = header_safe(settings.PUBLICATION_NAME).replace("\\", "").replace('"', "")
    return f'"{name}" <{header_safe(settings.LIST_ID)}>'


def build_message(
    *, digest: Digest, batch: Batch, rendering: RenderedSegment, recipients: list[Recipient]
) -> AnymailMessage:
    """The batch's single provider call. Each recipient gets their own message at the provider
    (batch sending), personalised from merge_data; merge_metadata carries the delivery id back in
    the provider's webhooks; X-Idempotency-Key lets a provider that honours it accept a replayed
    call only once."""
    merge_data, merge_headers, merge_metadata = {}, {}, {}
    suffix, digest_id = mailto_suffix(), str(digest.pk)  # the same for every recipient
    for r in recipients:
        data = recipient_merge_data(subscriber_uuid=r.uuid, name=r.name, digest_id=digest.pk)
        merge_data[r.email] = data
        merge_headers[r.email] = {"List-Unsubscribe": list_unsubscribe(data["one_click_url"], suffix)}
        merge_metadata[r.email] = {"delivery_id": str(r.delivery_id), "digest_id": digest_id}

    message = AnymailMessage(
        subject=rendering.subject or digest.subject,
        body=rendering.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[r.email for r in recipients],
        headers={
            "List-Id": list_id(),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "X-Idempotency-Key": str(batch.idempotency_key),
        },
    )
    message.attach_alternative(rendering.html, "text/html")
    message.merge_data = merge_data
    message.merge_headers = merge_headers
    message.merge_metadata = merge_metadata
    message.tags = ["digest"]
    return message
