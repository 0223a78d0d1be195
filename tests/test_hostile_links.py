"""Hostile input on the pages reached from emails: confirm, preferences (with export and
erase), unsubscribe and one-click. Whatever token, query or body arrives, the answer is never a
500, a forged or mangled token changes nothing, and a good token with bad choices changes
nothing either."""

import pytest
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from subscribers.models import ConsentRecord, Frequency, Subscriber
from subscribers.tokens import Purpose, make_token
from tests.factories import SubscriberFactory, TopicFactory

pytestmark = pytest.mark.django_db

examples = hsettings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

odd_text = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=400),
    st.sampled_from(
        [
            "",
            "x" * 20_000,
            "\r\nSet-Cookie: a=b",
            "<script>alert(1)</script>",
            "\u202e\u200b\ufeff",
            "%00",
            "../../etc/passwd",
            "Zm9v.YmFy.YmF6",
        ]
    ),
)
# Things that look like tokens: real tokens cut, extended and flipped, and noise.
real = make_token(Purpose.PREFERENCES, "6f1c2b7e-8f3a-4d2e-9b1a-0c5d7e9f1a2b")
tokenish = st.one_of(
    odd_text.filter(lambda t: "/" not in t and "\x00" not in t),
    st.integers(min_value=1, max_value=len(real) - 1).map(lambda n: real[:n]),
    st.text(alphabet="abcdefABCDEF0123456789-_.:", min_size=1, max_size=120),
    st.tuples(st.integers(0, len(real) - 1), st.sampled_from("aZ09-_.")).map(
        lambda p: real[: p[0]] + p[1] + real[p[0] + 1 :]
    ),
)
form_values = st.one_of(odd_text, st.lists(odd_text, max_size=3))
form_data = st.dictionaries(
    st.sampled_from(
        ["topics", "frequency", "name", "confirm", "email", "List-Unsubscribe", "csrfmiddlewaretoken"]
    ),
    form_values,
    max_size=5,
)


@pytest.fixture
def reader():
    topic = TopicFactory(slug="sport")
    subscriber = SubscriberFactory(email="reader@example.org", name="Ann", frequency=Frequency.DAILY)
    subscriber.set_topics([topic])
    return subscriber


def state():
    return (
        list(
            Subscriber.objects.order_by("pk").values_list(
                "email", "name", "status", "frequency", "segment_key"
            )
        ),
        ConsentRecord.objects.count(),
    )


def paths(token: str) -> list[str]:
    return [
        f"/confirm/{token}/",
        f"/preferences/{token}/",
        f"/preferences/{token}/export/",
        f"/preferences/{token}/erase/",
        f"/unsubscribe/{token}/",
        f"/unsubscribe/{token}/one-click/",
    ]


@given(token=tokenish, data=form_data, query=odd_text)
@examples
def test_forged_or_mangled_tokens_never_fail_and_change_nothing(reader, token, data, query):
    from urllib.parse import quote

    client = Client()
    before = state()
    for path in paths(quote(token, safe="")):
        assert client.get(path, {"d": query}).status_code in (200, 400, 404, 405, 410)
        response = client.post(f"{path}?d={quote(query, safe='')}", data)
        assert response.status_code in (400, 403, 404, 405, 410), (path, response.status_code)
    assert state() == before


@given(data=form_data)
@examples
def test_a_good_preferences_token_with_bad_choices_changes_nothing_or_only_valid_choices(reader, data):
    client = Client()
    token = make_token(Purpose.PREFERENCES, reader.uuid)
    before = state()
    response = client.post(f"/preferences/{token}/", data)
    assert response.status_code in (302, 400)
    reader.refresh_from_db()
    if response.status_code == 400:
        assert state() == before
    else:
        assert reader.status == Subscriber.Status.ACTIVE and reader.email == "reader@example.org"
        assert reader.frequency in Frequency.values
        assert len(reader.name) <= 100 and not any(ch in reader.name for ch in "\r\n\x00")


@given(body=form_data, query=odd_text)
@examples
def test_one_click_with_a_good_token_unsubscribes_only_on_the_exact_rfc_8058_body(reader, body, query):
    from urllib.parse import quote

    Subscriber.objects.filter(pk=reader.pk).update(status=Subscriber.Status.ACTIVE, unsubscribed_at=None)
    token = make_token(Purpose.UNSUBSCRIBE, reader.uuid)
    response = Client().post(f"/unsubscribe/{token}/one-click/?d={quote(query, safe='')}", body)
    reader.refresh_from_db()
    if body.get("List-Unsubscribe") == "One-Click":
        assert response.status_code == 200 and reader.status == Subscriber.Status.UNSUBSCRIBED
    else:
        assert response.status_code == 400 and reader.status == Subscriber.Status.ACTIVE


@given(token=st.sampled_from([Purpose.CONFIRM, Purpose.UNSUBSCRIBE]), data=form_data)
@examples
def test_tokens_of_other_purposes_open_no_preferences_export_or_erase(reader, token, data):
    other = make_token(token, reader.uuid)
    client = Client()
    before = state()
    assert client.get(f"/preferences/{other}/").status_code == 400
    for action in ("", "export/", "erase/"):
        assert client.post(f"/preferences/{other}/{action}", data).status_code == 400
    assert state() == before
