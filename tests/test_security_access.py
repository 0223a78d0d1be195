"""Who may do what: every editors' page needs a staff login (and the right permission), the
machine endpoints refuse bad credentials, and every form is CSRF-protected except the endpoints
that are authenticated another way. Routes are read from the URLconf, so a page added later is
covered without touching this file."""

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLResolver, get_resolver

from mailer.articles import create_api_source
from mailer.models import Article, Digest
from subscribers.models import ConsentRecord, Subscriber
from subscribers.tokens import Purpose, make_token
from tests.factories import ArticleFactory, DigestFactory, SubscriberFactory, TopicFactory

pytestmark = pytest.mark.django_db

# The views that may take a POST without our CSRF token, and what stands in for it.
CSRF_EXEMPT = {
    "unsubscribe/<str:token>/one-click/": "RFC 8058: the signed token authenticates",
    "subscribe/embed/": "the publisher's form: Origin/Referer must be an allowed site",
    "api/subscribe": "JSON with CORS: Origin must be an allowed site",
    "api/articles": "bearer token",
    "anymail/": "basic auth, then the provider's signature",
}
# Editors' pages a staff member without permissions may still open (Django's own).
STAFF_ANYWAY = {"admin/", "admin/jsi18n/", "admin/password_change/", "admin/password_change/done/"}


def routes() -> list[tuple[str, object]]:
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), pattern.callback

    return list(walk(get_resolver().url_patterns))


def concrete(route: str, object_id: int) -> str:
    """A path for a route: converters get the object's id, admin regexes a real app label."""
    path = re.sub(r"<(?:\w+:)?\w+>", str(object_id), route)
    path = path.replace("^(?P<app_label>auth|subscribers|mailer)/$", "mailer/")
    path = path.replace("(?P<url>.*)$", "no-such-page/")
    return "/" + path.replace("^", "").replace("$", "")


@pytest.fixture
def objects():
    """One row of everything, so an editors' page for an object has one to show."""
    SubscriberFactory(pk=1)
    TopicFactory(pk=1)
    ArticleFactory(pk=1)
    DigestFactory(pk=1)
    return 1


def admin_paths() -> list[str]:
    skip = {"admin/login/", "admin/logout/"}
    return [concrete(r, 1) for r, _ in routes() if r.startswith("admin/") and r not in skip]


def state():
    return (
        Subscriber.objects.count(),
        Article.objects.count(),
        list(Digest.objects.values_list("status", flat=True)),
        ConsentRecord.objects.count(),
    )


def test_the_urlconf_has_the_editors_pages_we_expect():
    paths = admin_paths()
    assert len(paths) > 60
    assert "/admin/mailer/digest/1/send-now/" in paths
    assert "/admin/subscribers/subscriber/export/" in paths


def test_anonymous_visitors_get_the_login_page_for_every_editors_page(objects):
    client = Client()
    before = state()
    for path in admin_paths():
        for method in (client.get, client.post):
            response = method(path)
            assert response.status_code == 302, (path, response.status_code)
            assert response["Location"].startswith("/admin/login/"), path
    assert state() == before


def test_readers_logged_in_without_staff_status_get_the_login_page_too(objects):
    User.objects.create_user("reader", password="pw-reader-1")
    client = Client()
    client.login(username="reader", password="pw-reader-1")
    before = state()
    for path in admin_paths():
        response = client.post(path)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), path
    assert state() == before


def test_staff_without_permissions_see_and_change_nothing(objects):
    User.objects.create_user("intern", password="pw-intern-1", is_staff=True)
    client = Client()
    client.login(username="intern", password="pw-intern-1")
    before = state()
    for path in admin_paths():
        if path.removeprefix("/") in STAFF_ANYWAY:
            continue
        for method in (client.get, client.post):
            response = method(path)
            assert response.status_code in (302, 403, 404, 405), (path, response.status_code)
            if response.status_code == 302:  # only ever back to the login or the index
                assert response["Location"].startswith(("/admin/login/", "/admin/")), path
    assert state() == before


def test_only_the_endpoints_authenticated_another_way_skip_csrf():
    exempt = {route for route, view in routes() if getattr(view, "csrf_exempt", False)}
    unexpected = {r for r in exempt if not any(r.startswith(allowed) for allowed in CSRF_EXEMPT)}
    assert not unexpected, f"CSRF-exempt views nobody reviewed: {sorted(unexpected)}"
    assert "unsubscribe/<str:token>/one-click/" in exempt


def test_every_readers_form_refuses_a_post_without_the_csrf_token(objects):
    reader = Subscriber.objects.get(pk=1)
    Subscriber.objects.filter(pk=1).update(status=Subscriber.Status.PENDING)
    client = Client(enforce_csrf_checks=True)
    preferences = make_token(Purpose.PREFERENCES, reader.uuid)
    forms = {
        "/subscribe/": {"email": "someone@example.org", "frequency": "daily"},
        f"/confirm/{make_token(Purpose.CONFIRM, reader.uuid)}/": {},
        f"/preferences/{preferences}/": {"frequency": "weekly"},
        f"/preferences/{preferences}/export/": {},
        f"/preferences/{preferences}/erase/": {"confirm": "on"},
        f"/unsubscribe/{make_token(Purpose.UNSUBSCRIBE, reader.uuid)}/": {},
    }
    before = state()
    for path, data in forms.items():
        assert client.post(path, data).status_code == 403, path
    assert state() == before
    reader.refresh_from_db()
    assert reader.status == Subscriber.Status.PENDING and reader.frequency == "daily"


def test_machine_endpoints_refuse_bad_credentials(objects):
    create_api_source("CMS")
    client = Client(enforce_csrf_checks=True)
    for auth in ("", "Bearer ", "Bearer wrong", "Basic bG9jYWw6d2ViaG9vay1zZWNyZXQ=", "bearer  "):
        headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
        response = client.post("/api/articles", "{}", content_type="application/json", **headers)
        assert response.status_code == 401, auth
    assert state()[1] == 1  # no article was stored


def test_every_provider_webhook_route_wants_our_credentials_and_never_fails():
    client = Client(raise_request_exception=False)
    anymail = [concrete(r, 1).replace("(_mime)?", "") for r, _ in routes() if r.startswith("anymail/")]
    assert "/anymail/mailgun/tracking/" in anymail
    for path in anymail:
        response = client.post(path, "{}", content_type="application/json")
        assert response.status_code in (400, 401, 403), (path, response.status_code)
