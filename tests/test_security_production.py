"""The production settings as deployed: `manage.py check --deploy` is clean, and responses
carry HSTS, a Content-Security-Policy, frame options and secure cookies. Run in a separate
process with config.settings.production, as gunicorn would load it."""

import json
import os
import secrets
import subprocess
import sys

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from config.security import ContentSecurityPolicyMiddleware
from tests.fixtures.worker import ROOT

HOST = "news.example.com"

# Requests made through Django's test client inside a production-settings process; pages that
# need no database rows, so the process needs no test database.
PROBE = """
import json
import django
django.setup()
from django.test import Client

client = Client(HTTP_HOST="news.example.com")
out = {}
plain = client.get("/thanks/")
out["http"] = [plain.status_code, plain.get("Location", "")]
for name, path in [("thanks", "/thanks/"), ("bad_link", "/confirm/not-a-token/"),
                   ("login", "/admin/login/"), ("admin", "/admin/")]:
    r = client.get(path, HTTP_X_FORWARDED_PROTO="https")
    cookies = {k: {"secure": bool(v["secure"]), "httponly": bool(v["httponly"]), "samesite": v["samesite"]}
               for k, v in r.cookies.items()}
    out[name] = {"status": r.status_code, "headers": dict(r.headers.items()), "cookies": cookies,
                 "location": r.get("Location", "")}
from django.conf import settings
out["session_cookie"] = [settings.SESSION_COOKIE_SECURE, settings.SESSION_COOKIE_HTTPONLY,
                         settings.SESSION_COOKIE_SAMESITE]
print(json.dumps(out))
"""


def production_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY=secrets.token_urlsafe(50),
        SITE_URL=f"https://{HOST}",
        ALLOWED_HOSTS=HOST,
        REDIS_URL=settings.REDIS_URL,
    )
    env.pop("DEBUG", None)
    return env


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=production_env(), capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def production_responses() -> dict:
    result = run(["-c", PROBE])
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_check_deploy_is_clean_with_the_production_settings():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_plain_http_is_redirected_to_https(production_responses):
    status, location = production_responses["http"]
    assert status == 301 and location == f"https://{HOST}/thanks/"


@pytest.mark.parametrize("page", ["thanks", "bad_link", "login", "admin"])
def test_every_response_carries_the_security_headers(production_responses, page):
    response = production_responses[page]
    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    policy = dict(d.strip().split(" ", 1) for d in headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'self'" and policy["form-action"] == "'self'"
    if page in ("thanks", "bad_link"):  # readers' pages: no inline script may run at all
        assert policy["script-src"] == "'self'"


def test_admin_needs_a_login_in_production_too(production_responses):
    assert production_responses["admin"]["status"] == 302
    assert production_responses["admin"]["location"].startswith("/admin/login/")


def test_cookies_are_secure(production_responses):
    csrf = production_responses["login"]["cookies"]["csrftoken"]
    assert csrf["secure"] and csrf["samesite"] == "Lax"
    assert production_responses["session_cookie"] == [True, True, "Lax"]


def test_frame_ancestors_follow_a_views_sameorigin_frame_option():
    """The admin's email preview is framed by its own page (X-Frame-Options SAMEORIGIN); CSP
    must then allow 'self', or browsers that obey CSP would blank the preview."""

    def view(request):
        response = HttpResponse("<p>email</p>")
        response["X-Frame-Options"] = "SAMEORIGIN"
        return response

    with override_settings(X_FRAME_OPTIONS="DENY"):
        middleware = ContentSecurityPolicyMiddleware(view)
        framed = middleware(RequestFactory().get("/admin/mailer/digest/1/preview/html/"))
        page = ContentSecurityPolicyMiddleware(lambda r: HttpResponse("x"))(RequestFactory().get("/"))
    assert "frame-ancestors 'self'" in framed["Content-Security-Policy"]
    assert "script-src 'self' 'unsafe-inline'" in framed["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    assert "script-src 'self';" in page["Content-Security-Policy"]
