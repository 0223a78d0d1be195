"""Property-based: whatever a form or API caller sends, the answer is never a 500, and a 4xx
writes nothing."""

import json

import pytest
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.models import ConsentRecord, Subscriber
from tests.factories import TopicFactory

pytestmark = pytest.mark.django_db

odd_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.sampled_from(
        [
            "\r\n",
            "a@b.c\r\nBcc: x@y.z",
            "\x00",
            "\uff41\uff4e\uff4e\uff41@\uff45\uff58ample.org",  # fullwidth letters
            "x" * 5000,
        ]
    ),
)
domains = st.sampled_from(
    ["example.org", "BÜCHER.example", "пример.испытание", "xn--bcher-kva.example", "a..b"]
)
addresses = st.one_of(
    odd_text,
    st.builds(lambda local, domain: f"{local}@{domain}", st.text(min_size=1, max_size=70), domains),
    st.emails().map(str),
)
topic_ids = st.lists(
    st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.text(max_size=25)), max_size=4
)
examples = hsettings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def state():
    return Subscriber.objects.count(), ConsentRecord.objects.count()


@pytest.fixture
def unlimited(settings):
    settings.SIGNUP_RATE_LIMIT_PER_IP = 10**9
    return TopicFactory(slug="sport")


@given(raw=addresses)
@examples
def test_normalising_either_gives_a_valid_short_address_or_refuses(raw):
    try:
        email = normalise_email(raw)
    except InvalidAddress as exc:
        assert str(exc)
        return
    assert len(email) <= 254 and email == email.strip() and email.isascii()
    assert "\r" not in email and "\n" not in email
    assert normalise_email(email) == email  # idempotent


@given(email=addresses, name=odd_text, frequency=odd_text, topics=topic_ids)
@examples
def test_the_form_never_fails_and_refusals_write_nothing(unlimited, email, name, frequency, topics):
    before = state()
    data = {"email": email, "name": name, "frequency": frequency, "topics": [str(t) for t in topics]}
    response = Client().post("/subscribe/", data)
    assert response.status_code in (302, 400)
    if response.status_code == 400:
        assert state() == before


@given(
    payload=st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "email": st.one_of(addresses, st.integers(), st.lists(st.text(max_size=5), max_size=2)),
                "name": st.one_of(odd_text, st.none(), st.booleans()),
                "frequency": st.one_of(odd_text, st.integers()),
                "topics": st.one_of(
                    topic_ids,
                    st.text(max_size=10),
                    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                ),
                "website": st.one_of(st.just(""), odd_text),
            },
        ),
        st.lists(st.integers(), max_size=3),
        st.text(max_size=30),
    )
)
@examples
def test_the_api_never_fails_and_refusals_write_nothing(unlimited, payload):
    before = state()
    response = Client().post("/api/subscribe", json.dumps(payload), content_type="application/json")
    assert response.status_code in (202, 400)
    assert response.json()["message"]
    if response.status_code == 400:
        assert state() == before
