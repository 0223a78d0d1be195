"""The two yardsticks of the send benchmark.

``naive_send``: how an edition goes out without the engine: per recipient, render the digest
(Django template and MJML), fill in the personal parts, and make one Anymail call.

``payload_limit``: what the stack allows at best: the CPU work every batch needs and nothing
else (merge data and the AnymailMessage, then Anymail's Mailgun payload and its encoding as
the HTTP body), for the same recipients, no database and no network.
"""

import time
from dataclasses import dataclass

import requests
from django.conf import settings
from django.core.mail import get_connection

REQUEST_FIELDS = ("method", "url", "headers", "files", "data", "params", "auth", "cookies", "json")


@dataclass(frozen=True)
class Timing:
    recipients: int
    seconds: float
    message_seconds: float = 0.0
    payload_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.recipients / self.seconds if self.seconds else 0.0


def naive_send(provider, *, sample: int) -> Timing:
    """Send a fresh edition to the first ``sample`` subscribers the naive way; the wall time."""
    from anymail.message import AnymailMessage

    from bench import data
    from mailer.rendering import apply_merge_data, build_segment, digest_articles, recipient_merge_data
    from mailer.sending.message import list_id
    from subscribers.headers import list_unsubscribe
    from subscribers.models import Subscriber

    settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_API_URL": provider.api_url}
    digest = data.edition(subject="The Riverside Courier: naive edition")
    articles = digest_articles(digest)
    readers = list(
        Subscriber.objects.filter(status=Subscriber.Status.ACTIVE)
        .order_by("id")
        .values_list("email", "uuid", "name", "segment_key")[:sample]
    )
    started = time.perf_counter()
    with get_connection() as connection:
        for email, uuid, name, segment_key in readers:
            content = build_segment(digest, segment_key, articles)
            merge = recipient_merge_data(subscriber_uuid=uuid, name=name, digest_id=digest.pk)
            message = AnymailMessage(
                subject=content.subject,
                body=apply_merge_data(content.text, merge),
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[email],
                headers={
                    "List-Id": list_id(),
                    "List-Unsubscribe": list_unsubscribe(merge["one_click_url"]),
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
                connection=connection,
            )
            message.attach_alternative(apply_merge_data(content.html, merge), "text/html")
            message.send()
    return Timing(len(readers), time.perf_counter() - started)


def payload_limit(*, sample: int) -> Timing:
    """Build the batch payloads for the first ``sample`` subscribers, grouped into batches per
    segment as the fan-out does; only the building is timed (reading the rows is not)."""
    from mailer.models import Batch, Digest
    from mailer.rendering import render_segment
    from mailer.sending.message import Recipient, build_message
    from subscribers.models import Subscriber

    digest = Digest.objects.order_by("-id").first()
    backend = get_connection()
    size = max(1, settings.PROVIDER_BATCH_SIZE)
    renderings: dict[str, object] = {}
    message_seconds = payload_seconds = 0.0
    done, after = 0, 0
    while done < sample:
        page = list(
            Subscriber.objects.filter(id__gt=after, status=Subscriber.Status.ACTIVE)
            .order_by("id")
            .values_list("id", "email", "uuid", "name", "segment_key")[: min(size * 5, sample - done)]
        )
        if not page:
            break
        after = page[-1][0]
        groups: dict[str, list[Recipient]] = {}
        for pk, email, uuid, name, segment_key in page:
            groups.setdefault(segment_key, []).append(Recipient(pk, email, uuid, name))
        for key in groups:
            if key not in renderings:
                renderings[key] = render_segment(digest, key)
        for number, (key, recipients) in enumerate(groups.items()):
            t0 = time.perf_counter()
            message = build_message(
                digest=digest,
                batch=Batch(digest=digest, number=number, segment_key=key),
                rendering=renderings[key],
                recipients=recipients,
            )
            t1 = time.perf_counter()
            payload = backend.build_message_payload(message, backend.send_defaults)
            params = payload.get_request_params(backend.api_url)
            requests.Request(**{k: v for k, v in params.items() if k in REQUEST_FIELDS}).prepare()
            t2 = time.perf_counter()
            message_seconds += t1 - t0
            payload_seconds += t2 - t1
        done += len(page)
    return Timing(done, message_seconds + payload_seconds, message_seconds, payload_seconds)
