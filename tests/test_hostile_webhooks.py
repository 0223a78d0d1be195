"""The provider's tracking webhook under hostile and malformed input: without our credentials
nothing is read; with them but a bad signature nothing is read; and even a correctly signed body
(the provider, or whoever holds its key) with odd event data never gets a 500 and never touches
a delivery or subscriber it does not name."""

import base64
import hashlib
import hmac
import json
import secrets
import time

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mailer.models import Delivery
from subscribers.models import Subscriber
from tests.factories import SubscriberFactory
from tests.test_delivery_fanout import make_edition

pytestmark = pytest.mark.django_db

URL = "/anymail/mailgun/tracking/"
examples = hsettings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
odd_ids = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["²", "١٢", "99999999999999999999999999", "-1", "0", " 1", "1\n", "1e3"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    json_values,
)
events = st.sampled_from(
    ["delivered", "failed", "opened", "clicked", "complained", "unsubscribed", "accepted", "", "x" * 300]
)
event_data = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"event": events},
        optional={
            "severity": st.sampled_from(["permanent", "temporary", "", None]),
            "recipient": st.one_of(st.emails().map(str), st.text(max_size=40), json_values),
            "user-variables": st.one_of(st.fixed_dictionaries({"delivery_id": odd_ids}), json_values),
            "message": st.fixed_dictionaries({"headers": st.fixed_dictionaries({"message-id": odd_ids})}),
            "timestamp": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12)),
            "id": odd_ids,
            "delivery-status": json_values,
            "reason": st.text(max_size=50),
        },
    ),
)


def basic_auth(secret: str) -> str:
    return "Basic " + base64.b64encode(secret.encode()).decode()


def signed(data, key: str | None = None) -> dict:
    key = key or settings.ANYMAIL["MAILGUN_WEBHOOK_SIGNING_KEY"]
    timestamp, token = str(int(time.time())), secrets.token_hex(25)
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": data}


@pytest.fixture
def reader():
    """A reader with a sent delivery, so events could find something to change."""
    from mailer import sending

    subscriber = SubscriberFactory(email="reader@example.org")
    digest = make_edition()
    sending.start_edition(digest.pk)
    Delivery.objects.filter(digest=digest).update(status=Delivery.Status.SENT, message_id="<m@example.org>")
    return subscriber


def snapshot():
    return (
        list(Subscriber.objects.order_by("pk").values_list("status", "soft_bounces", "unsubscribed_at")),
        list(
            Delivery.objects.order_by("pk").values_list(
                "status", "delivered_at", "bounced_at", "complained_at", "opened_at", "unsubscribed_at"
            )
        ),
    )


@given(body=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())))
@examples
def test_without_our_credentials_nothing_is_read(client, reader, body):
    before = snapshot()
    for auth in ({}, {"HTTP_AUTHORIZATION": basic_auth("local:wrong")}):
        response = client.post(URL, body, content_type="application/json", **auth)
        assert response.status_code in (400, 401, 403), response.status_code
    assert snapshot() == before


@given(data=event_data)
@examples
def test_a_bad_signature_is_refused_and_changes_nothing(client, reader, data):
    before = snapshot()
    body = signed(data, key="not-the-signing-key")
    response = client.post(
        URL,
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth("local:webhook-secret"),
    )
    assert response.status_code == 400
    assert snapshot() == before


@given(data=event_data)
@examples
def test_signed_but_odd_event_data_never_fails_and_names_nobody_else(client, reader, data):
    before = snapshot()
    response = client.post(
        URL,
        json.dumps(signed(data)),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth("local:webhook-secret"),
    )
    assert response.status_code < 500
    # Nothing generated names our reader's delivery with its address, so nothing may change.
    recipient = data.get("recipient") if isinstance(data, dict) else None
    if recipient != reader.email:
        assert snapshot() == before


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[]", b"null", b'{"signature": "x"}', b'{"signature": {}}', b"\xff\xfe" * 50, b"{" * 5000],
)
def test_malformed_bodies_with_our_credentials_are_400(client, reader, body):
    before = snapshot()
    response = client.post(
        URL, body, content_type="application/json", HTTP_AUTHORIZATION=basic_auth("local:webhook-secret")
    )
    assert response.status_code == 400
    assert snapshot() == before
