"""The sign-up form on the publisher's own site (plain HTML POST) and the JSON API with CORS."""

import json

import pytest
from django.test import Client

from subscribers.models import ConsentRecord, Subscriber
from tests.factories import SubscriberFactory, TopicFactory
from tests.signups import run_queued_signups

pytestmark = pytest.mark.django_db

SITE = "https://news.example.com"


@pytest.fixture(autouse=True)
def publisher_site(settings):
    settings.SIGNUP_CORS_ORIGINS = [SITE]


@pytest.fixture
def strict_client():
    """Like a browser on another site: no CSRF cookie or token of ours."""
    return Client(enforce_csrf_checks=True)


def embed(client, data, **headers):
    data = {"frequency": "daily", **data}
    return client.post("/subscribe/embed/", data, **headers)


def test_a_form_on_an_allowed_site_signs_up_without_our_csrf_token_and_goes_back(strict_client):
    response = embed(
        strict_client,
        {"email": "reader@example.org", "next": f"{SITE}/newsletter/?from=box"},
        HTTP_ORIGIN=SITE,
    )
    assert response.status_code == 302
    assert response["Location"] == f"{SITE}/newsletter/?from=box&subscribed=1"
    assert run_queued_signups() == 1
    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.PENDING
    assert subscriber.consents.get().source == ConsentRecord.Source.FORM


def test_without_a_next_address_the_reader_lands_on_our_thanks_page(strict_client):
    response = embed(strict_client, {"email": "reader@example.org"}, HTTP_REFERER=f"{SITE}/a-story/")
    assert response.status_code == 302 and response["Location"] == "/thanks/"


def test_next_on_a_foreign_site_is_not_followed(strict_client):
    response = embed(
        strict_client, {"email": "reader@example.org", "next": "https://evil.example/"}, HTTP_ORIGIN=SITE
    )
    assert response["Location"] == "/thanks/"


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_ORIGIN": "https://evil.example"},
        {"HTTP_REFERER": "https://evil.example/page"},
        {"HTTP_ORIGIN": "https://news.example.com.evil.example"},
        {},
    ],
)
def test_posts_from_other_or_unknown_sites_are_refused_and_store_nothing(strict_client, headers):
    response = embed(strict_client, {"email": "reader@example.org"}, **headers)
    assert response.status_code == 403
    assert "not allowed to send sign-ups" in response.content.decode()
    assert not Subscriber.objects.exists()


def test_embedded_bad_input_shows_our_form_with_the_message(strict_client):
    response = embed(strict_client, {"email": "nope"}, HTTP_ORIGIN=SITE)
    assert response.status_code == 400
    assert "Email address: Enter a valid email address" in response.content.decode()
    assert not Subscriber.objects.exists()


# --- JSON API -------------------------------------------------------------------------------


def api(client, payload, origin=SITE, **headers):
    if origin:
        headers["HTTP_ORIGIN"] = origin
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    return client.post("/api/subscribe", body, content_type="application/json", **headers)


def test_preflight_allows_listed_origins_only(strict_client):
    allowed = strict_client.options(
        "/api/subscribe", HTTP_ORIGIN=SITE, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert allowed.status_code == 204
    assert allowed["Access-Control-Allow-Origin"] == SITE
    assert "POST" in allowed["Access-Control-Allow-Methods"]
    assert "Content-Type" in allowed["Access-Control-Allow-Headers"]
    other = strict_client.options(
        "/api/subscribe", HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert "Access-Control-Allow-Origin" not in other


def test_the_api_signs_up_and_answers_the_same_for_a_known_address(strict_client):
    sport = TopicFactory(slug="sport")
    first = api(strict_client, {"email": "New@Example.org", "topics": [sport.pk], "name": "Ann"})
    assert first.status_code == 202
    assert first["Access-Control-Allow-Origin"] == SITE
    assert run_queued_signups() == 1
    subscriber = Subscriber.objects.get()
    assert subscriber.email == "new@example.org" and subscriber.segment_key == str(sport.pk)
    assert subscriber.consents.get().source == ConsentRecord.Source.API
    SubscriberFactory(email="known@example.org")
    again = api(strict_client, {"email": "known@example.org"})
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.json()["ok"] is True


def test_the_api_also_serves_callers_without_a_browser_origin(strict_client):
    response = api(strict_client, {"email": "server@example.org"}, origin=None)
    assert response.status_code == 202
    assert "Access-Control-Allow-Origin" not in response


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"email": "a@example.org", "topics": [424242]}, "topics", "424242 is not one of the topics"),
        ({"email": "a@example.org", "topics": "1"}, "topics", "send a list of topic ids"),
        ({"email": "a@example.org\nBcc: b@example.org"}, "email", "cannot contain line breaks"),
        ({"email": "x" * 300 + "@example.org"}, "email", "at most 254"),
        ({"email": ["a@example.org"]}, "email", "must be a string"),
        ({"email": "a@example.org", "frequency": "yearly"}, "frequency", "not one of the choices"),
        ({}, "email", "enter your email address"),
    ],
)
def test_api_errors_name_the_field_and_write_nothing(strict_client, payload, field, message):
    response = api(strict_client, payload)
    assert response.status_code == 400
    body = response.json()
    assert body["ok"] is False
    assert any(message in m for m in body["errors"][field])
    assert response["Access-Control-Allow-Origin"] == SITE
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [("{not json", "not valid JSON"), ('["a@example.org"]', "JSON object"), ("x" * 9000, "larger than")],
)
def test_api_refuses_malformed_bodies(strict_client, body, message):
    response = api(strict_client, body)
    assert response.status_code == 400 and message in response.json()["message"]
    assert not Subscriber.objects.exists()


def test_api_refuses_a_declared_oversized_body_before_reading_it(strict_client):
    response = strict_client.generic(
        "POST",
        "/api/subscribe",
        b"{}",
        content_type="application/json",
        HTTP_ORIGIN=SITE,
        CONTENT_LENGTH="99999999",
    )
    assert response.status_code == 400 and "larger than" in response.json()["message"]


def test_api_refuses_browsers_on_other_sites_and_non_json(strict_client):
    assert api(strict_client, {"email": "a@example.org"}, origin="https://evil.example").status_code == 403
    form = strict_client.post("/api/subscribe", {"email": "a@example.org"}, HTTP_ORIGIN=SITE)
    assert form.status_code == 415
    assert strict_client.get("/api/subscribe").status_code == 405
    assert not Subscriber.objects.exists()


def test_api_honeypot_and_rate_limit(strict_client, settings):
    settings.SIGNUP_RATE_LIMIT_PER_IP = 2
    bot = api(strict_client, {"email": "bot@example.org", "website": "spam"})
    assert bot.status_code == 202 and not Subscriber.objects.exists()
    assert api(strict_client, {"email": "a@example.org"}).status_code == 202
    limited = api(strict_client, {"email": "b@example.org"})
    assert limited.status_code == 429
    assert "Too many sign-ups" in limited.json()["message"] and limited["Retry-After"]
    assert limited["Access-Control-Allow-Origin"] == SITE
