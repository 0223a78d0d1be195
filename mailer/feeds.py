"""Fetching and reading RSS 2.0 / Atom feeds: bytes off the network, entries out.

``fetch_feed`` speaks HTTP carefully: a conditional GET (ETag / Last-Modified), a connect and
read timeout plus an overall deadline, and a size cap enforced while streaming, so a slow or
endless response cannot hold a worker or fill its memory.

``parse_feed`` hands the bytes to feedparser (which never touches the network here) after
refusing documents that declare XML entities: entity declarations are the tool of the "billion
laughs" and external-entity attacks, and no real news feed needs them. They are found by
letting expat read the prolog with a handler that stops at the first declaration (nothing is
expanded), as defusedxml does. expat (>= 2.4) and feedparser both defend against expansion
too; refusing up front makes the outcome a clear, recorded error instead of depending on which
parser path feedparser takes.
Entries come out as ``ArticleData`` in the shapes WordPress produces; cleaning of HTML and
text happens when they are ingested (``mailer.articles``).
"""

import calendar
import io
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.parsers import expat

import feedparser
import requests
from django.conf import settings

from mailer.sanitize import safe_url

MAX_ENTRIES = 500

_FIRST_IMG = re.compile(r"""<img\b[^>]*?\bsrc\s*=\s*(?:"([^"]+)"|'([^']+)'|([^\s>]+))""", re.IGNORECASE)
_CDATA_OR_COMMENT = re.compile(rb"<!\[CDATA\[.*?\]\]>|<!--.*?-->", re.DOTALL)
_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)


class FeedError(Exception):
    """A feed could not be read; the message is recorded on the Source for editors."""


class FeedUnreachable(FeedError):
    """Network failure, timeout or an HTTP error status."""


class FeedTooLarge(FeedError):
    """The response is bigger than FEED_MAX_BYTES."""


class FeedRejected(FeedError):
    """The document is not a feed we accept (malformed, hostile)."""


@dataclass(frozen=True)
class ArticleData:
    """One article as it arrives from outside, not yet cleaned (``mailer.articles`` cleans it)."""

    url: str
    title: str
    guid: str = ""
    excerpt: str = ""  # HTML summary
    content: str = ""  # full HTML body; the excerpt is made from it when there is no summary
    image_url: str = ""
    author: str = ""
    categories: tuple[str, ...] = ()
    published_at: datetime | None = None
    base_url: str = ""  # what relative links are resolved against


@dataclass(frozen=True)
class FetchedFeed:
    url: str  # after redirects
    not_modified: bool
    body: bytes = b""
    etag: str = ""
    last_modified: str = ""
    content_type: str = ""


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    site_url: str
    entries: list[ArticleData]


def user_agent() -> str:
    return f"{settings.PUBLICATION_NAME} newsletter feed reader (+{settings.SITE_URL})"


def fetch_feed(url: str, *, etag: str = "", last_modified: str = "") -> FetchedFeed:
    """GET ``url`` with the validators of the last successful fetch.

    Returns ``not_modified=True`` for a 304. Raises ``FeedUnreachable`` (network error,
    timeout, deadline, non-2xx status), ``FeedTooLarge`` (over ``FEED_MAX_BYTES``, checked
    against Content-Length and again while streaming).
    """
    if not safe_url(url):
        raise FeedRejected("The feed address must be an http or https URL.")
    headers = {
        "User-Agent": user_agent(),
        "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.1",
    }
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    limit = settings.FEED_MAX_BYTES
    timeout = settings.FEED_TIMEOUT
    deadline = time.monotonic() + settings.FEED_DEADLINE
    try:
        with requests.get(url, headers=headers, timeout=(timeout, timeout), stream=True) as response:
            if response.status_code == 304:
                return FetchedFeed(
                    url=response.url, not_modified=True, etag=etag, last_modified=last_modified
                )
            if not 200 <= response.status_code < 300:
                raise FeedUnreachable(f"The feed answered HTTP {response.status_code} {response.reason}.")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise FeedTooLarge(f"The feed is larger than the limit of {limit} bytes.")
            buffer = bytearray()
            for chunk in response.iter_content(chunk_size=64 * 1024):
                buffer += chunk
                if len(buffer) > limit:
                    raise FeedTooLarge(f"The feed is larger than the limit of {limit} bytes.")
                if time.monotonic() > deadline:
                    raise FeedUnreachable(
                        f"The feed took longer than {settings.FEED_DEADLINE} s to download."
                    )
            return FetchedFeed(
                url=response.url,
                not_modified=False,
                body=bytes(buffer),
                etag=response.headers.get("ETag", "")[:300],
                last_modified=response.headers.get("Last-Modified", "")[:100],
                content_type=response.headers.get("Content-Type", ""),
            )
    except requests.Timeout as exc:
        raise FeedUnreachable(f"The feed did not answer within {timeout} s.") from exc
    except requests.RequestException as exc:
        raise FeedUnreachable(f"The feed could not be fetched: {type(exc).__name__}: {exc}") from exc


class _Stop(Exception):
    pass


def declares_entities(body: bytes) -> bool:
    """Whether the document's DOCTYPE declares entities. expat reads the prolog and reports
    each declaration without expanding anything; reading stops at the root element. A prolog
    expat cannot read is judged by its text instead (any "<!ENTITY" outside comments and CDATA),
    so a malformed document never slips through to feedparser's lenient parser unchecked."""
    parser = expat.ParserCreate()
    found = False

    def declaration(*args) -> None:
        nonlocal found
        found = True
        raise _Stop

    def root_element(*args) -> None:
        raise _Stop

    parser.EntityDeclHandler = declaration
    parser.UnparsedEntityDeclHandler = declaration
    parser.StartElementHandler = root_element
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(body, True)
    except _Stop:
        return found
    except expat.ExpatError:
        pass
    text = body
    if text[:4] in (b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00"):
        text = text.decode("utf-32", "ignore").encode()
    elif text[:2] in (b"\xff\xfe", b"\xfe\xff"):
        text = text.decode("utf-16", "ignore").encode()
    elif b"\x00" in text[:4]:
        text = text.replace(b"\x00", b"")
    return bool(_ENTITY_DECLARATION.search(_CDATA_OR_COMMENT.sub(b"", text)))


def check_document(body: bytes) -> None:
    """Raise ``FeedRejected`` for documents we refuse before parsing (empty, or declaring
    XML entities in a DOCTYPE)."""
    if not body.strip():
        raise FeedRejected("The feed is empty.")
    if declares_entities(body):
        raise FeedRejected("The feed declares XML entities in its DOCTYPE; refused as unsafe.")


def _struct_to_datetime(value) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError, TypeError):
        return None


def _image_of(entry, base: str) -> str:
    for media in entry.get("media_content", []) or []:
        medium, kind = media.get("medium", ""), media.get("type", "")
        if (medium == "image" or kind.startswith("image/") or not (medium or kind)) and media.get("url"):
            url = safe_url(media["url"], base)
            if url:
                return url
    for thumbnail in entry.get("media_thumbnail", []) or []:
        url = safe_url(thumbnail.get("url"), base)
        if url:
            return url
    for link in entry.get("links", []) or []:
        if link.get("rel") == "enclosure" and link.get("type", "").startswith("image/"):
            url = safe_url(link.get("href"), base)
            if url:
                return url
    for html in [c.get("value", "") for c in entry.get("content", []) or []] + [entry.get("summary", "")]:
        match = _FIRST_IMG.search(html or "")
        if match:
            url = safe_url(next(g for g in match.groups() if g), base)
            if url:
                return url
    return ""


def _entry_to_data(entry, *, base: str, fetched_at: datetime) -> ArticleData | None:
    url = safe_url(entry.get("link"), base)
    if not url:
        for link in entry.get("links", []) or []:
            if link.get("rel", "alternate") == "alternate":
                url = safe_url(link.get("href"), base)
                if url:
                    break
    if not url:
        return None
    published = _struct_to_datetime(entry.get("published_parsed")) or _struct_to_datetime(
        entry.get("updated_parsed")
    )
    # A missing date is the fetch time; a date ahead of the fetch (bad clocks, scheduled posts
    # leaking early) is too, so an article never sorts above ones that really came later.
    if published is None or published > fetched_at:
        published = fetched_at
    content = next((c.get("value", "") for c in entry.get("content", []) or [] if c.get("value")), "")
    summary = entry.get("summary", "") or ""
    if summary and content and summary.strip() == content.strip():
        summary = ""  # Atom feeds without a summary repeat the content there
    categories = tuple(
        term
        for term in (tag.get("term") or tag.get("label") or "" for tag in entry.get("tags", []) or [])
        if term
    )
    return ArticleData(
        url=url,
        title=entry.get("title", "") or "",
        guid=(entry.get("id") or "").strip(),
        excerpt=summary,
        content=content,
        image_url=_image_of(entry, base),
        author=entry.get("author", "") or "",
        categories=categories,
        published_at=published,
        base_url=base,
    )


def parse_feed(body: bytes, *, url: str, fetched_at: datetime, content_type: str = "") -> ParsedFeed:
    """The entries of an RSS 2.0 / RSS 1.0 / Atom document (at most ``MAX_ENTRIES``).

    Tolerates the small errors real feeds have (undefined HTML entities, stray ampersands) as
    long as feedparser recovers entries. Raises ``FeedRejected`` for a document that is not a
    feed or that declares entities.
    """
    check_document(body)
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    # feedparser's own sanitiser is off: everything is cleaned with nh3 on ingest (and it is slow).
    try:
        parsed = feedparser.parse(io.BytesIO(body), response_headers=headers, sanitize_html=False)
    except (ValueError, LookupError, RecursionError) as exc:
        # feedparser's HTML path raises on some hostile input (UnicodeEncodeError for a character
        # reference to a lone surrogate such as &#xD800;): a document we cannot read.
        raise FeedRejected(f"The feed could not be read: {type(exc).__name__}.") from exc
    if not parsed.get("version") and not parsed.entries:
        problem = parsed.get("bozo_exception")
        detail = f": {problem}" if problem else ""
        raise FeedRejected(f"This is not an RSS or Atom feed{detail}.")
    site_url = safe_url(parsed.feed.get("link"), url) or url
    entries = []
    for entry in parsed.entries[:MAX_ENTRIES]:
        data = _entry_to_data(entry, base=url, fetched_at=fetched_at)
        if data is not None:
            entries.append(data)
    if parsed.get("bozo") and not entries:
        raise FeedRejected(
            f"The feed is malformed and has no readable entries: {parsed.get('bozo_exception')}."
        )
    return ParsedFeed(title=parsed.feed.get("title", "") or "", site_url=site_url, entries=entries)
