"""The provider's tracking webhook: Anymail's Mailgun view (basic auth, then the provider's
signature), refusing signed event data it cannot read with a 400 instead of a 500.

A 500 tells the provider "try again later", so a body that can never be read would come back
for hours; Anymail's parser and our receivers also assume field types the JSON may not have.
Events are checked here, at the edge, so mailer.feedback only ever sees well-formed ones.
"""

from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.webhooks.mailgun import MailgunTrackingWebhookView

# What Anymail's parser raises on event data of the wrong shape (missing keys, a number where
# text belongs, a timestamp out of range: OverflowError or, from the C library, OSError).
UNREADABLE = (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError, OSError)


def well_formed(event) -> bool:
    """The normalised event's fields have the types the receivers rely on."""
    text_or_none = (event.event_type, event.recipient, event.message_id, event.event_id)
    return all(value is None or isinstance(value, str) for value in text_or_none) and isinstance(
        event.metadata, dict
    )


class TrackingWebhookView(MailgunTrackingWebhookView):
    def run_validators(self, request):
        # Anymail's signature check reads the body's "signature" block and fails with a
        # TypeError when the JSON is, say, a list.
        try:
            super().run_validators(request)
        except UNREADABLE as exc:
            raise AnymailWebhookValidationFailure(f"Unreadable webhook body ({type(exc).__name__}).") from exc

    def parse_events(self, request):
        try:
            events = super().parse_events(request)
        except UNREADABLE as exc:
            raise AnymailWebhookValidationFailure(f"Unreadable event data ({type(exc).__name__}).") from exc
        if not all(well_formed(event) for event in events):
            raise AnymailWebhookValidationFailure("Event data of the wrong shape.")
        return events
