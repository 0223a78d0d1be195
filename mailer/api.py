"""The CMS articles API: ``POST /api/articles`` with ``Authorization: Bearer <token>``.

The body is one JSON object::

    {"title": "...", "url": "https://...",                  required
     "guid": "...", "excerpt": "<p>...</p>", "html": "...",  optional: the excerpt is made from
     "image_url": "https://...", "author": "...",             "html" when "excerpt" is absent
     "categories": ["Politics", ...], "published_at": "2026-05-01T09:30:00+01:00"}

Answers are JSON: 201 ``{"id", "status": "created", ...}`` for a new article, 200 with status
``updated``, ``unchanged`` or ``kept`` (already mailed, left as sent) for a known guid/URL;
400 ``{"error", "field"}`` naming the first bad field; 401 without a valid token; 405 for
anything but POST; 413 over ``ARTICLE_API_MAX_BYTES``; 429 over ``ARTICLE_API_RATE_LIMIT``
requests per minute per token. Nothing is stored unless the answer is 200 or 201.

Send the guid the site's feed carries, so the API and the feed name one article (without a
guid, the URL is the key; an article already stored at the same URL is updated either way).
``published_at`` defaults to now and is never later than now; ``excerpt`` and ``html`` are
sanitised (see ``mailer.sanitize``), the other text fields stored as plain text.
"""

import json
import time
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from mailer.articles import (
    CATEGORIES_PER_ARTICLE,
    KEY_MAX,
    URL_MAX,
    Outcome,
    authenticate_api_token,
    ingest_article,
)
from mailer.feeds import ArticleData
from mailer.models import Source
from mailer.sanitize import plain_text, safe_url

FIELDS = {"title", "url", "guid", "excerpt", "html", "image_url", "author", "categories", "published_at"}
TEXT_LIMITS = {"title": 2000, "guid": KEY_MAX, "author": 1000, "excerpt": 100_000, "html": 400_000}
_url_validator = URLValidator(schemes=["http", "https"])


class PayloadError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _error(status: int, message: str, *, field: str | None = None, **headers: str) -> JsonResponse:
    body = {"error": message}
    if field:
        body["field"] = field
    response = JsonResponse(body, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _text(payload: dict, name: str, *, required: bool = False) -> str:
    value = payload.get(name)
    if value is None or value == "":
        if required:
            raise PayloadError(name, f"{name} is required.")
        return ""
    if not isinstance(value, str):
        raise PayloadError(name, f"{name} must be a string.")
    if len(value) > TEXT_LIMITS.get(name, URL_MAX):
        raise PayloadError(name, f"{name} is longer than {TEXT_LIMITS.get(name, URL_MAX)} characters.")
    return value


def _url(payload: dict, name: str, *, required: bool = False) -> str:
    value = _text(payload, name, required=required)
    if not value:
        return ""
    url = safe_url(value)
    try:
        _url_validator(url)
    except ValidationError:
        url = ""
    if not url:
        raise PayloadError(name, f"{name} must be an absolute http or https URL.")
    return url


def parse_payload(payload: object) -> ArticleData:
    """The article in a request body, or ``PayloadError`` naming the first bad field."""
    if not isinstance(payload, dict):
        raise PayloadError("body", "The body must be a JSON object.")
    unknown = sorted(set(payload) - FIELDS)
    if unknown:
        raise PayloadError(
            unknown[0], f"Unknown field {unknown[0]!r}; expected some of {', '.join(sorted(FIELDS))}."
        )
    title = _text(payload, "title", required=True)
    if not plain_text(title, max_length=500):
        raise PayloadError("title", "title has no text.")
    url = _url(payload, "url", required=True)
    categories = payload.get("categories") or []
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        raise PayloadError("categories", "categories must be a list of strings.")
    if len(categories) > CATEGORIES_PER_ARTICLE or any(len(c) > 100 for c in categories):
        raise PayloadError(
            "categories", f"At most {CATEGORIES_PER_ARTICLE} categories of 100 characters each."
        )
    published_at = None
    raw_date = _text(payload, "published_at")
    if raw_date:
        try:
            published_at = datetime.fromisoformat(raw_date)
        except ValueError as exc:
            raise PayloadError("published_at", "published_at must be an ISO 8601 date and time.") from exc
        if published_at.tzinfo is None:
            raise PayloadError("published_at", "published_at needs a time zone offset (e.g. Z or +01:00).")
    return ArticleData(
        url=url,
        title=title,
        guid=_text(payload, "guid").strip(),
        excerpt=_text(payload, "excerpt"),
        content=_text(payload, "html"),
        image_url=_url(payload, "image_url"),
        author=_text(payload, "author"),
        categories=tuple(categories),
        published_at=published_at,
        base_url=url,
    )


def _bearer_token(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _over_rate_limit(source: Source) -> int:
    """Seconds until the token may call again, or 0 when this call is within its limit."""
    window = 60
    now = time.time()
    key = f"articles-api:{source.pk}:{int(now // window)}"
    cache.add(key, 0, timeout=window * 2)
    try:
        count = cache.incr(key)
    except ValueError:  # the key expired between add and incr: this call opens a new count
        cache.add(key, 1, timeout=window * 2)
        count = 1
    if count > settings.ARTICLE_API_RATE_LIMIT:
        return int(window - now % window) + 1
    return 0


@csrf_exempt  # authenticated by its bearer token, never by a session cookie
def articles_endpoint(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return _error(405, "Use POST.", Allow="POST")
    source = authenticate_api_token(_bearer_token(request))
    if source is None:
        return _error(401, "A valid API token is required.", WWW_Authenticate='Bearer realm="articles"')
    retry_after = _over_rate_limit(source)
    if retry_after:
        return _error(429, "Too many requests for this token; slow down.", Retry_After=str(retry_after))
    limit = settings.ARTICLE_API_MAX_BYTES
    declared = request.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        return _error(413, f"The body is larger than {limit} bytes.")
    body = request.read(limit + 1)
    if len(body) > limit:
        return _error(413, f"The body is larger than {limit} bytes.")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return _error(400, "The body must be JSON.", field="body")
    try:
        data = parse_payload(payload)
    except PayloadError as exc:
        return _error(400, str(exc), field=exc.field)
    article_id, outcome = ingest_article(source, data)
    return JsonResponse(
        {"id": article_id, "status": outcome.value}, status=201 if outcome == Outcome.CREATED else 200
    )
