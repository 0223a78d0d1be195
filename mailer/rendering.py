"""A digest as email: MJML compiled to HTML, and the plain text, once per edition and segment.

The body of an edition is the same for every subscriber of one segment (the topics they
chose), so it is compiled once and stored as a ``RenderedSegment``; the per-recipient parts
(greeting, preferences and unsubscribe links) are merge placeholders written with
``settings.PROVIDER_MERGE_FIELD`` that the provider fills from each recipient's merge data
(``recipient_merge_data``). ``apply_merge_data`` does the same substitution here, for test
sends and previews.

Everything from outside (article titles, excerpts, URLs, the editor's subject and intro) is
escaped by the Django template before MJML sees it; excerpts are sanitised HTML and are
cleaned once more here, so a bad row can never inject markup or MJML.
"""

import functools
import html
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import nh3
from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import dateformat, timezone, translation
from django.utils.html import strip_tags
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from mailer.mjml import compile_mjml
from mailer.models import Article, Digest, DigestArticle, RenderedSegment
from subscribers.models import Frequency, Topic
from subscribers.tokens import recipient_links

# Every placeholder a rendered body may contain. Keys ending in _html are HTML-escaped values
# for the HTML part; the plain ones go into the text part (the provider fills both parts from
# one set of merge data, so each part uses its own keys).
MERGE_KEYS = (
    "name",
    "name_html",
    "greeting",
    "greeting_html",
    "unsubscribe_url",
    "preferences_url",
    "one_click_url",
)

EXCERPT_TAGS = {"p", "a", "em", "strong", "b", "i", "ul", "ol", "li", "br", "blockquote"}


class InvalidSegment(ValueError):
    """A segment key that is not a list of topic ids ("", or ids joined by commas)."""


@dataclass(frozen=True)
class SegmentContent:
    """An edition rendered for one segment: what a ``RenderedSegment`` stores."""

    subject: str
    html: str
    text: str
    article_count: int


@dataclass
class ArticleView:
    """An article as the templates show it, every field already made safe."""

    title: str
    url: str
    excerpt_html: SafeString
    excerpt_text: str
    image_url: str
    author: str
    published_at: datetime | None
    topic_ids: set[int] = field(default_factory=set)


# --- Counting compilations (the invariant "once per segment" is tested by this counter) -------

_lock = threading.Lock()
_compilations = 0


def compilations() -> int:
    """How many MJML compilations this process has made (tests compare before and after)."""
    return _compilations


def _compile(source: str) -> str:
    global _compilations
    with _lock:
        _compilations += 1
    return compile_mjml(source)


# --- Merge fields --------------------------------------------------------------------------------


def merge_field(key: str) -> str:
    """The placeholder for ``key`` in the provider's syntax, e.g. ``%recipient.unsubscribe_url%``."""
    return settings.PROVIDER_MERGE_FIELD.format(key)


def _merge_fields() -> dict[str, str]:
    return {key: merge_field(key) for key in MERGE_KEYS}


# C0 controls other than tab and newline, DEL and C1 controls: meaningless in an email, and
# MJML's parser refuses the whole template when one appears.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _defuse(text: str) -> str:
    """Make outside text safe to put in a template, before escaping: control characters go,
    and any of our placeholders is broken (an article titled ``%recipient.unsubscribe_url%``
    must not be filled in by the provider): a word joiner after its first character keeps it
    readable and makes it match nothing."""
    text = _CONTROLS.sub("", text)
    for placeholder in _merge_fields().values():
        if placeholder in text:
            text = text.replace(placeholder, placeholder[0] + "\u2060" + placeholder[1:])
    return text


@functools.lru_cache(maxsize=64)
def _greetings(language: str) -> tuple[str, str]:
    """The greeting with and without a name, translated once per language rather than once per
    recipient (a gettext lookup costs more than the rest of a recipient's merge data)."""
    with translation.override(language or None):
        return _("Hello %(name)s,"), _("Hello,")


def recipient_merge_data(
    *, subscriber_uuid: uuid.UUID | str, name: str, digest_id: int | None
) -> dict[str, str]:
    """The values of every placeholder of a rendered edition for one recipient.

    The _html keys are HTML-escaped; the links (``unsubscribe_url``, ``preferences_url``,
    ``one_click_url``) are signed for this subscriber, carry the edition id so an unsubscribe
    is credited to it, and contain no character HTML would need escaped. Cheap: two HMACs.
    """
    links = recipient_links(subscriber_uuid, digest_id)
    name = " ".join(_CONTROLS.sub("", name or "").split())
    with_name, without_name = _greetings(translation.get_language() or "")
    greeting = with_name % {"name": name} if name else without_name
    return {
        "name": name,
        "name_html": html.escape(name),
        "greeting": greeting,
        "greeting_html": html.escape(greeting),
        "unsubscribe_url": html.escape(links["unsubscribe_url"]),
        "preferences_url": html.escape(links["preferences_url"]),
        "one_click_url": html.escape(links["one_click_url"]),
    }


def apply_merge_data(text: str, data: dict[str, str]) -> str:
    """``text`` with each placeholder of ``data`` replaced by its value, in one pass (a value that
    happens to look like a placeholder is not expanded again)."""
    if not data:
        return text
    fields = {merge_field(key): value for key, value in data.items()}
    pattern = re.compile("|".join(re.escape(f) for f in sorted(fields, key=len, reverse=True)))
    return pattern.sub(lambda match: fields[match.group(0)], text)


# --- Segments ------------------------------------------------------------------------------------


def parse_segment_key(segment_key: str) -> frozenset[int]:
    """The topic ids of a segment key ("" = every topic). Raises ``InvalidSegment``."""
    if not segment_key:
        return frozenset()
    try:
        ids = frozenset(int(part) for part in segment_key.split(","))
    except ValueError as exc:
        raise InvalidSegment(f"not a segment key: {segment_key[:50]!r}") from exc
    if any(pk <= 0 for pk in ids):
        raise InvalidSegment(f"not a segment key: {segment_key[:50]!r}")
    return ids


def segment_key_for(topic_ids) -> str:
    """The canonical key of a topic selection, as ``Subscriber.set_topics`` writes it."""
    return ",".join(str(pk) for pk in sorted(set(topic_ids)))


def _safe_url(url: str) -> str:
    """Only http(s) links go into an email; anything else becomes no link at all."""
    url = (url or "").strip()
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return ""
    return url if scheme in ("http", "https") else ""


def _clean_excerpt(excerpt: str) -> str:
    return nh3.clean(
        excerpt or "",
        tags=EXCERPT_TAGS,
        attributes={"a": {"href"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )


def _excerpt_text(clean_html: str) -> str:
    text = re.sub(r"(?i)<li[^>]*>", "\n- ", clean_html)
    text = re.sub(r"(?i)</p>|<br\s*/?>|</li>|</blockquote>", "\n", text)
    text = html.unescape(strip_tags(text))
    paragraphs = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(p for p in paragraphs if p)


def article_view(article: Article, topic_ids: set[int]) -> ArticleView:
    excerpt = _defuse(_clean_excerpt(article.excerpt))
    return ArticleView(
        title=_defuse(" ".join(article.title.split())),
        url=_safe_url(article.url),
        excerpt_html=mark_safe(excerpt),
        excerpt_text=_excerpt_text(excerpt),
        image_url=_safe_url(article.image_url),
        author=_defuse(" ".join((article.author or "").split())),
        published_at=article.published_at,
        topic_ids=topic_ids,
    )


def digest_articles(digest: Digest) -> list[ArticleView]:
    """The edition's articles in the editor's order, with their topic ids (two queries)."""
    links = list(
        DigestArticle.objects.filter(digest_id=digest.pk).select_related("article").order_by("position", "id")
    )
    topics: dict[int, set[int]] = {link.article_id: set() for link in links}
    for article_id, topic_id in Article.topics.through.objects.filter(article_id__in=topics).values_list(
        "article_id", "topic_id"
    ):
        topics[article_id].add(topic_id)
    return [article_view(link.article, topics[link.article_id]) for link in links]


def articles_for_segment(articles: list[ArticleView], topic_ids: frozenset[int]) -> list[ArticleView]:
    """Subscribers of a segment get the articles of their topics; "" (no choice) gets all, and
    an article with no topic goes to everyone."""
    if not topic_ids:
        return list(articles)
    return [a for a in articles if not a.topic_ids or a.topic_ids & topic_ids]


# --- Rendering -----------------------------------------------------------------------------------


def publication_context() -> dict:
    return {
        "publication_name": settings.PUBLICATION_NAME,
        "publication_url": _safe_url(settings.PUBLICATION_URL),
        "publication_logo_url": _safe_url(settings.PUBLICATION_LOGO_URL),
        "publication_postal_address": settings.PUBLICATION_POSTAL_ADDRESS,
    }


def _why(digest: Digest, topic_ids: frozenset[int]) -> str:
    # Whole sentences per case, so that each language can order its words.
    plain, on_topics = {
        Frequency.INSTANT: (
            _("You receive this email because you signed up for the news alerts of %(name)s."),
            _("You receive this email because you signed up for the news alerts of %(name)s on %(topics)s."),
        ),
        Frequency.DAILY: (
            _("You receive this email because you signed up for the daily newsletter of %(name)s."),
            _(
                "You receive this email because you signed up for the daily newsletter of %(name)s on %(topics)s."
            ),
        ),
        Frequency.WEEKLY: (
            _("You receive this email because you signed up for the weekly newsletter of %(name)s."),
            _(
                "You receive this email because you signed up for the weekly newsletter of %(name)s on %(topics)s."
            ),
        ),
    }.get(
        digest.frequency,
        (
            _("You receive this email because you signed up for the newsletter of %(name)s."),
            _("You receive this email because you signed up for the newsletter of %(name)s on %(topics)s."),
        ),
    )
    names = []
    if topic_ids:
        names = list(
            Topic.objects.filter(pk__in=topic_ids).order_by("position", "name").values_list("name", flat=True)
        )
    if not names:
        return _defuse(plain % {"name": settings.PUBLICATION_NAME})
    listed = (
        names[0]
        if len(names) == 1
        else _("%(first)s and %(last)s") % {"first": ", ".join(names[:-1]), "last": names[-1]}
    )
    return _defuse(on_topics % {"name": settings.PUBLICATION_NAME, "topics": listed})


def _edition_date(digest: Digest) -> str:
    when = digest.scheduled_for or digest.created_at or timezone.now()
    local = timezone.localtime(when, ZoneInfo(settings.PUBLICATION_TIME_ZONE))
    return dateformat.format(local, "l j F Y")


def build_segment(
    digest: Digest, segment_key: str, articles: list[ArticleView] | None = None
) -> SegmentContent:
    """Render ``digest`` for one segment without storing it (previews and test sends).

    A segment with no article of its topics renders nothing (``article_count == 0``, empty
    bodies): those subscribers are not sent this edition. Raises ``InvalidSegment``.
    """
    topic_ids = parse_segment_key(segment_key)
    if articles is None:
        articles = digest_articles(digest)
    chosen = articles_for_segment(articles, topic_ids)
    subject = _defuse(" ".join(digest.subject.split()))
    if not chosen:
        return SegmentContent(subject=subject, html="", text="", article_count=0)
    preview = _defuse(" ".join(digest.preview_text.split())) or "; ".join(a.title for a in chosen[:3])
    context = {
        **publication_context(),
        "digest": digest,
        "subject": subject,
        "preview_text": preview,
        "intro": _defuse(digest.intro.strip()),
        "articles": chosen,
        "edition_date": _edition_date(digest),
        "why": _why(digest, topic_ids),
        "merge": _merge_fields(),
    }
    name = "alert" if digest.frequency == Frequency.INSTANT else "digest"
    html_body = _compile(render_to_string(f"email/{name}.mjml", context))
    text = render_to_string(f"email/{name}.txt", context)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    return SegmentContent(subject=subject, html=html_body, text=text, article_count=len(chosen))


def render_segment(digest: Digest, segment_key: str) -> RenderedSegment:
    """The stored rendering of ``digest`` for ``segment_key``, compiled on first use.

    Compiles MJML at most once per digest and segment, also when several workers ask at once:
    the first caller renders while holding the digest's row lock (an IMMEDIATE transaction on
    SQLite), the others wait and then read the stored row. Calling it again returns the same
    row. Raises ``InvalidSegment`` and ``Digest.DoesNotExist``.
    """
    key = segment_key_for(parse_segment_key(segment_key))
    stored = RenderedSegment.objects.filter(digest_id=digest.pk, segment_key=key).first()
    if stored is not None:
        return stored
    with transaction.atomic():
        fresh = Digest.objects.select_for_update().get(pk=digest.pk)
        stored = RenderedSegment.objects.filter(digest_id=digest.pk, segment_key=key).first()
        if stored is not None:
            return stored
        content = build_segment(fresh, key)
        return RenderedSegment.objects.create(
            digest=fresh,
            segment_key=key,
            subject=content.subject,
            html=content.html,
            text=content.text,
            article_count=content.article_count,
        )


def sample_merge_data(
    *, name: str = "Alex Reader", digest_id: int | None = None, subscriber_uuid=None
) -> dict:
    """Merge data for previews and test sends (links signed for ``subscriber_uuid`` if given,
    otherwise for a made-up reader, so they open a "not valid" page rather than someone's)."""
    return recipient_merge_data(
        subscriber_uuid=subscriber_uuid or uuid.uuid4(), name=name, digest_id=digest_id
    )
