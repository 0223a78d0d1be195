"""Read queries shared by the pages, the API and the admin."""

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from subscribers import tokens
from subscribers.models import Subscriber, Topic


class SubscriberGone(Exception):
    """The link is genuine but the subscriber no longer exists (they erased their data)."""


def subscriber_from_token(purpose: str, token: str) -> Subscriber:
    """The subscriber a signed link names. Raises ``tokens.InvalidToken`` (bad or expired) or
    ``SubscriberGone``."""
    subscriber_uuid = tokens.read_token(purpose, token)
    subscriber = Subscriber.objects.filter(uuid=subscriber_uuid).first()
    if subscriber is None:
        raise SubscriberGone(_("This subscription no longer exists."))
    return subscriber


def public_topics() -> QuerySet[Topic]:
    return Topic.objects.filter(is_public=True)
