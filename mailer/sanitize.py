"""Making HTML and text from outside (feeds, the CMS API, the admin) safe to store and to mail.

Everything an article carries is cleaned here before it is stored, so rendering can trust the
stored excerpt as HTML and every other field as plain text:

- ``clean_html``: an allow-list (nh3, the Rust ``ammonia`` sanitiser) of a few inline and block
  tags; links keep only http, https and mailto targets, relative ones are made absolute against
  the page they came from, and each gets ``rel="noopener"``.
- ``plain_text``: tags stripped, entities unescaped, whitespace collapsed, length capped.
- ``trim_excerpt``: the WordPress endings (``[…]``, "Continue reading", "The post ... appeared
  first on ...") that mean nothing in an email.
"""

import html
import re
from urllib.parse import urljoin, urlsplit

import nh3

ALLOWED_TAGS = frozenset({"p", "a", "em", "strong", "b", "i", "ul", "ol", "li", "br", "blockquote"})
ALLOWED_ATTRIBUTES = {"a": {"href"}}
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener"

# Control characters other than tab and newline never belong in a title or a name.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u2028\u2029]")
_WHITESPACE = re.compile(r"\s+")
_ENTITY = re.compile(r"&(#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]{1,31});")

# "[…]", "[...]", "[&hellip;]" and the like at the very end of an excerpt (inside a last </p>).
_READ_MORE_MARK = re.compile(r"\s*\[\s*(?:…|\.\.\.|&hellip;|&#8230;|&#x2026;)\s*\]\s*(?=(?:</p>)?\s*$)")
# A closing paragraph that only links onwards: "Continue reading ...", "Read more".
_READ_MORE_PARAGRAPH = re.compile(
    r"<p>\s*(?:<a [^>]*>)?\s*(?:continue reading|read more)\b.*?</p>\s*$", re.IGNORECASE | re.DOTALL
)
_READ_MORE_LINK = re.compile(
    r"\s*<a [^>]*>\s*(?:continue reading|read more)\b.*?</a>\s*(?=(?:</p>)?\s*$)", re.IGNORECASE | re.DOTALL
)
# The Yoast SEO footer WordPress adds to every feed item.
_APPEARED_FIRST = re.compile(
    r"<p>\s*The post .{0,600}? appeared first on .{0,600}?</p>\s*$", re.IGNORECASE | re.DOTALL
)
_EMPTY_PARAGRAPH = re.compile(r"<p>(?:\s|<br>|&nbsp;|\xa0)*</p>")


def safe_url(value: str | None, base: str | None = None, *, schemes=frozenset({"http", "https"})) -> str:
    """``value`` as an absolute URL with one of ``schemes`` (resolved against ``base`` when
    relative), or "" when it is not one. Whitespace and control characters are not tolerated."""
    if not value or not isinstance(value, str):
        return ""
    value = value.strip()
    if not value or CONTROL_CHARACTERS.search(value) or any(ch.isspace() for ch in value):
        return ""
    try:
        if base:
            value = urljoin(base, value)
        parts = urlsplit(value)
    except ValueError:
        return ""
    if parts.scheme.lower() not in schemes:
        return ""
    if parts.scheme.lower() in {"http", "https"} and not parts.hostname:
        return ""
    return value


def clean_html(value: str | None, *, base_url: str | None = None) -> str:
    """Sanitised HTML: only ``ALLOWED_TAGS``; ``<a href>`` only to http/https/mailto (relative
    links made absolute against ``base_url``, dropped when there is none), ``rel="noopener"``;
    script and style removed with their content; comments removed. Idempotent."""
    if not value:
        return ""

    def absolute_links(tag: str, attribute: str, url: str) -> str | None:
        if tag == "a" and attribute == "href":
            return safe_url(url, base_url, schemes=LINK_SCHEMES) or None
        return url

    cleaned = nh3.clean(
        value,
        tags=set(ALLOWED_TAGS),
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=set(LINK_SCHEMES),
        link_rel=LINK_REL,
        attribute_filter=absolute_links,
        strip_comments=True,
    )
    return CONTROL_CHARACTERS.sub("", cleaned).strip()


def plain_text(value: str | None, *, max_length: int) -> str:
    """Plain text for a title or a name: tags stripped, entities unescaped (also the doubly
    escaped ones WordPress feeds carry, ``&amp;#8217;``), control characters dropped, whitespace
    collapsed, cut at ``max_length`` characters with an ellipsis."""
    if not value:
        return ""
    text = html.unescape(nh3.clean(str(value), tags=set(), strip_comments=True))
    if _ENTITY.search(text):
        text = html.unescape(text)
    text = _WHITESPACE.sub(" ", CONTROL_CHARACTERS.sub("", text)).strip()
    if len(text) > max_length:
        text = text[: max_length - 1].rstrip() + "…"
    return text


def trim_excerpt(cleaned_html: str) -> str:
    """Remove the WordPress "more" endings from already sanitised HTML."""
    value = _APPEARED_FIRST.sub("", cleaned_html.strip()).strip()
    value = _READ_MORE_PARAGRAPH.sub("", value).strip()
    value = _READ_MORE_LINK.sub("", value).strip()
    value = _READ_MORE_MARK.sub("", value).strip()
    value = _EMPTY_PARAGRAPH.sub("", value).strip()
    return value


def text_length(cleaned_html: str) -> int:
    """How many characters of text sanitised HTML shows."""
    return len(html.unescape(re.sub(r"<[^>]*>", "", cleaned_html)).strip())


_BLOCK_TAG = re.compile(r"<(?:p|ul|ol|blockquote)\b")
_BLOCK_END = re.compile(r"(?<=</p>)|(?<=</ul>)|(?<=</ol>)|(?<=</blockquote>)")


def make_excerpt(value: str | None, *, base_url: str | None = None, max_chars: int = 600) -> str:
    """A sanitised, trimmed excerpt of at most about ``max_chars`` characters of text: whole
    leading paragraphs while they fit, or the first one cut at a word when even it is too long
    (full article bodies arrive where only a summary was expected)."""
    cleaned = trim_excerpt(clean_html(value, base_url=base_url))
    if cleaned and not _BLOCK_TAG.search(cleaned):
        cleaned = f"<p>{cleaned}</p>"  # WordPress summaries are often bare text
    if text_length(cleaned) <= max_chars:
        return cleaned
    kept: list[str] = []
    for block in _BLOCK_END.split(cleaned):
        if kept and text_length("".join([*kept, block])) > max_chars:
            break
        kept.append(block)
    excerpt = "".join(kept)
    if text_length(excerpt) > max_chars:
        text = plain_text(excerpt, max_length=max_chars + 1)
        cut = text[:max_chars].rsplit(" ", 1)[0].rstrip(" ,;:.")
        return f"<p>{html.escape(cut, quote=False)} …</p>"
    # Cutting between blocks may leave a tag open; a second pass closes it.
    return clean_html(excerpt, base_url=base_url)
