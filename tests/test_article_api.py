"""The CMS articles API: token auth, validation naming the field, idempotency, limits."""

import json

import pytest
from django.core.management import call_command
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mailer.articles import create_api_source
from mailer.models import Article, Source
from tests.factories import TopicFactory

ENDPOINT = "/api/articles"


@pytest.fixture
def api(db):
    source, token = create_api_source("WordPress")
    client = Client(enforce_csrf_checks=True)  # the API must work without a CSRF token

    def post(payload, *, token=token, raw: bytes | None = None, **extra):
        body = raw if raw is not None else json.dumps(payload)
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        return client.post(ENDPOINT, body, content_type="application/json", **headers, **extra)

    post.source, post.token, post.client = source, token, client
    return post


def article(**overrides):
    payload = {
        "title": "Bridge reopens",
        "url": "https://news.example/2026/11/bridge/",
        "guid": "https://news.example/?p=42",
        "excerpt": "<p>The bridge is open <b>again</b>.</p>",
        "image_url": "https://news.example/img/bridge.jpg",
        "author": "Sam Writer",
        "categories": ["Transport"],
        "published_at": "2026-11-20T09:30:00+01:00",
    }
    payload.update(overrides)
    return payload


def test_create_then_idempotent_then_update(api):
    transport = TopicFactory(slug="transport", name="Transport")
    created = api(article())
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "created"
    stored = Article.objects.get(pk=body["id"])
    assert stored.source == api.source
    assert stored.excerpt == "<p>The bridge is open <b>again</b>.</p>"
    assert list(stored.topics.all()) == [transport]
    assert stored.published_at.isoformat() == "2026-11-20T08:30:00+00:00"

    again = api(article())
    assert (again.status_code, again.json()) == (200, {"id": stored.id, "status": "unchanged"})

    updated = api(article(title="Bridge reopens after repairs"))
    assert (updated.status_code, updated.json()["status"]) == (200, "updated")
    stored.refresh_from_db()
    assert stored.title == "Bridge reopens after repairs"
    assert Article.objects.count() == 1


def test_without_guid_the_url_is_the_key(api):
    first = api(article(guid=None))
    second = api(article(guid=None, title="Same URL"))
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert Article.objects.get().guid == "https://news.example/2026/11/bridge/"


def test_html_is_sanitised_and_becomes_the_excerpt(api):
    response = api(
        article(
            excerpt=None,
            html='<p>Hi <a href="javascript:alert(1)">x</a><script>steal()</script> <a href="/more">more</a></p>'
            '<iframe src="https://evil.example"></iframe>',
            title="<b>Bold</b> &amp; <script>x</script>title",
        )
    )
    assert response.status_code == 201
    stored = Article.objects.get()
    assert stored.excerpt == (
        '<p>Hi <a rel="noopener">x</a> <a href="https://news.example/more" rel="noopener">more</a></p>'
    )
    assert stored.title == "Bold & title"


@pytest.mark.parametrize("token", ["", "wrong", "nl_" + "x" * 43, "x" * 500])
def test_missing_or_bad_token_is_401(api, token):
    response = api(article(), token=token)
    assert response.status_code == 401
    assert response.json()["error"] == "A valid API token is required."
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert Article.objects.count() == 0


def test_other_auth_schemes_and_inactive_sources_are_refused(api):
    assert (
        api.client.post(
            ENDPOINT, "{}", content_type="application/json", HTTP_AUTHORIZATION=f"Basic {api.token}"
        ).status_code
        == 401
    )
    Source.objects.filter(pk=api.source.pk).update(is_active=False)
    assert api(article()).status_code == 401


def test_a_new_token_replaces_the_old(api):
    call_command("create_api_source", "Other CMS")  # another source's token does not matter
    from mailer.articles import issue_api_token

    new = issue_api_token(api.source)
    assert api(article(), token=api.token).status_code == 401
    assert api(article(), token=new).status_code == 201


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"title": None}, "title"),
        ({"title": ""}, "title"),
        ({"title": "<p> </p>"}, "title"),
        ({"title": 42}, "title"),
        ({"url": None}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "ftp://news.example/x"}, "url"),
        ({"url": "/relative/path"}, "url"),
        ({"url": "https://" + "a" * 1000 + ".example/"}, "url"),
        ({"image_url": "data:image/png;base64,AAAA"}, "image_url"),
        ({"categories": "Politics"}, "categories"),
        ({"categories": [1, 2]}, "categories"),
        ({"categories": ["x"] * 31}, "categories"),
        ({"published_at": "yesterday"}, "published_at"),
        ({"published_at": "2026-11-20T09:30:00"}, "published_at"),
        ({"guid": "g" * 501}, "guid"),
        ({"author": ["a"]}, "author"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_payload_is_400_naming_the_field(api, overrides, field):
    payload = {k: v for k, v in article(**overrides).items() if v is not None}
    response = api(payload)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert field in response.json()["error"]
    assert Article.objects.count() == 0


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"\xff\xfe", b'"text"', b"[" * 100000])
def test_body_that_is_not_a_json_object_is_400(api, raw):
    response = api(None, raw=raw)
    assert response.status_code == 400
    assert response.json()["field"] == "body"


def test_oversized_body_is_413(api, settings):
    settings.ARTICLE_API_MAX_BYTES = 2000
    response = api(article(html="<p>" + "x" * 5000 + "</p>"))
    assert response.status_code == 413
    assert Article.objects.count() == 0


def test_only_post_is_allowed(api):
    for method in ("get", "put", "delete"):
        response = getattr(api.client, method)(ENDPOINT, HTTP_AUTHORIZATION=f"Bearer {api.token}")
        assert response.status_code == 405
        assert response["Allow"] == "POST"
    assert Article.objects.count() == 0


def test_rate_limit_per_token(api, settings):
    settings.ARTICLE_API_RATE_LIMIT = 3
    statuses = [api(article(guid=f"g{n}", url=f"https://news.example/{n}/")).status_code for n in range(4)]
    assert statuses == [201, 201, 201, 429]
    _other, other_token = create_api_source("Second CMS")
    assert api(article(guid="g9", url="https://news.example/9/"), token=other_token).status_code == 201


def test_create_api_source_command_prints_a_working_token_once(db, capsys):
    call_command("create_api_source", "Newsroom CMS")
    out = capsys.readouterr()
    token = out.out.strip()
    source = Source.objects.get(name="Newsroom CMS")
    assert source.kind == Source.Kind.API
    assert source.token_hash == Source.hash_token(token)
    assert token not in source.token_hash and source.token_prefix == token[:8]
    response = Client().post(
        ENDPOINT, json.dumps(article()), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 201


def test_control_characters_never_reach_the_database(api):
    response = api(article(guid="urn:\x00cms:1", title="Nul\x00 title", author="A\x00B"))
    assert response.status_code == 201
    stored = Article.objects.get()
    assert (stored.guid, stored.title, stored.author) == ("urn:cms:1", "Nul title", "AB")


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.dictionaries(
        st.sampled_from(
            ["title", "url", "guid", "excerpt", "html", "image_url", "author", "categories", "published_at"]
        ),
        st.one_of(st.text(max_size=40), st.integers(), st.none(), st.lists(st.text(max_size=5), max_size=3)),
    )
)
def test_any_payload_gets_a_clear_answer_never_a_500(api, payload):
    response = api(payload)
    assert response.status_code in (200, 201, 400)
    if response.status_code == 400:
        assert response.json()["field"]
