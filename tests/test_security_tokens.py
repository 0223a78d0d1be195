"""The signed links in emails: they cannot be forged, a token made for one purpose opens no
other, and an expired one opens nothing (through the pages, not only the signer)."""

import time
import uuid

import pytest
from django.core import signing
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from subscribers.models import Subscriber
from subscribers.tokens import InvalidToken, Purpose, make_token, read_token
from tests.factories import SubscriberFactory

purposes = st.sampled_from(Purpose.ALL)
uuids = st.uuids()


@given(purpose=purposes, other=purposes, subscriber=uuids)
def test_a_token_opens_its_own_purpose_only(purpose, other, subscriber):
    token = make_token(purpose, subscriber)
    assert read_token(purpose, token) == subscriber
    if other != purpose:
        with pytest.raises(InvalidToken):
            read_token(other, token)


@given(purpose=purposes, subscriber=uuids, data=st.data())
@hsettings(max_examples=200)
def test_any_change_to_a_token_makes_it_invalid(purpose, subscriber, data):
    token = make_token(purpose, subscriber)
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(
        st.sampled_from("0123456789abcdefABCDEF-_.:").filter(lambda c: c != token[position])
    )
    forged = token[:position] + replacement + token[position + 1 :]
    with pytest.raises(InvalidToken):
        read_token(purpose, forged)


@given(purpose=purposes, subscriber=uuids, victim=uuids)
def test_a_signature_cannot_be_moved_to_another_subscriber(purpose, subscriber, victim):
    _, stamp, signature = make_token(purpose, subscriber).split(".")
    with pytest.raises(InvalidToken):
        read_token(purpose, f"{victim.hex}.{stamp}.{signature}")


def test_tokens_signed_with_another_secret_or_by_djangos_default_signer_are_refused(settings):
    subscriber = uuid.uuid4()
    settings.SECRET_KEY = "another-deployment-" + "x" * 40
    foreign = make_token(Purpose.UNSUBSCRIBE, subscriber)
    settings.SECRET_KEY = "this-deployment-" + "y" * 40
    with pytest.raises(InvalidToken):
        read_token(Purpose.UNSUBSCRIBE, foreign)
    # A value signed by the project's other signers (sessions, messages) is no link either.
    with pytest.raises(InvalidToken):
        read_token(Purpose.UNSUBSCRIBE, signing.TimestampSigner(sep=".").sign(subscriber.hex))


def token_made_ago(monkeypatch, purpose: str, subscriber_uuid, seconds: int) -> str:
    real_time = time.time
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: real_time() - seconds)
        return make_token(purpose, subscriber_uuid)


@pytest.mark.django_db
def test_an_expired_confirmation_link_confirms_nothing(client, monkeypatch, settings):
    reader = SubscriberFactory(status=Subscriber.Status.PENDING, confirmed_at=None)
    token = token_made_ago(monkeypatch, Purpose.CONFIRM, reader.uuid, settings.CONFIRMATION_MAX_AGE + 60)

    assert client.get(f"/confirm/{token}/").status_code == 410
    assert client.post(f"/confirm/{token}/").status_code == 410
    reader.refresh_from_db()
    assert reader.status == Subscriber.Status.PENDING


@pytest.mark.django_db
def test_expired_preferences_and_unsubscribe_links_change_nothing(client, monkeypatch, settings):
    reader = SubscriberFactory()
    age = settings.SUBSCRIBER_LINK_MAX_AGE + 60
    preferences = token_made_ago(monkeypatch, Purpose.PREFERENCES, reader.uuid, age)
    unsubscribe = token_made_ago(monkeypatch, Purpose.UNSUBSCRIBE, reader.uuid, age)

    assert client.post(f"/preferences/{preferences}/", {"frequency": "weekly"}).status_code == 410
    assert client.post(f"/preferences/{preferences}/erase/", {"confirm": "on"}).status_code == 410
    assert client.post(f"/unsubscribe/{unsubscribe}/").status_code == 410
    response = client.post(f"/unsubscribe/{unsubscribe}/one-click/", {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 400
    reader.refresh_from_db()
    assert reader.status == Subscriber.Status.ACTIVE and reader.frequency == "daily"


@pytest.mark.django_db
def test_a_fresh_link_still_works_after_those_checks(client):
    reader = SubscriberFactory()
    token = make_token(Purpose.UNSUBSCRIBE, reader.uuid)
    assert (
        client.post(f"/unsubscribe/{token}/one-click/", {"List-Unsubscribe": "One-Click"}).status_code == 200
    )
    reader.refresh_from_db()
    assert reader.status == Subscriber.Status.UNSUBSCRIBED
