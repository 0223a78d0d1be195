"""The provider's tracking webhook: Anymail's Mailgun view (basic auth, then the provider's
signature), refusing signed event data it cannot read with a 400 instead of a 500.

A 500 tells the provider "try again later", so a body that can never be read would come back
for hours; Anymail's parser and our receivers also assume field types the JSON may not have.
Events are checked here, at the edge, so mailer.feedback only ever sees well-formed ones.
"""

from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern, path

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


def tracking_urlpatterns(providers: list[str]) -> list[URLPattern]:
    """Routes for the tracking webhook of each provider in ``providers`` (Anymail's names:
    mailgun, postmark, sendgrid, amazon_ses...), Mailgun's through TrackingWebhookView.

    Only those: ``include("anymail.urls")`` would route every provider's inbound and tracking
    endpoints, and some answer anyone with a 500 when their provider's extra package is not
    installed (Amazon SES without boto3). Raises ImproperlyConfigured for an unknown name.
    """
    from anymail import urls as anymail_urls

    known = {p.name: p for p in anymail_urls.urlpatterns}
    routes = []
    for provider in providers:
        name = f"{provider}_tracking_webhook"
        if provider == "mailgun":
            view = TrackingWebhookView.as_view()
        elif name in known:
            view = known[name].callback
        else:
            raise ImproperlyConfigured(f"Anymail has no tracking webhook for provider {provider!r}.")
        routes.append(path(f"anymail/{provider}/tracking/", view, name=name))
    return routes
