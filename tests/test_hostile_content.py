"""Hostile articles, from a feed or the CMS API: malformed, huge and entity-expanding feeds are
refused or read safely (a clear FeedError, never another exception), and whatever is stored
carries no control characters in its text fields and no active markup in its HTML."""

import json
import unicodedata
from datetime import UTC, datetime

import pytest
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mailer.articles import create_api_source, ingest_entries
from mailer.feeds import MAX_ENTRIES, FeedError, FeedRejected, parse_feed
from mailer.models import Article
from tests.test_security_escaping import assert_inert

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FEED_URL = "https://news.example/feed/"
examples = hsettings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def rss(items: str, prolog: str = '<?xml version="1.0" encoding="UTF-8"?>') -> bytes:
    return (
        f'{prolog}<rss version="2.0"><channel><title>News</title><link>https://news.example/</link>'
        f"{items}</channel></rss>"
    ).encode()


ITEM = (
    "<item><title>Bridge reopens</title><link>https://news.example/bridge/</link>"
    "<guid>https://news.example/?p=1</guid><description><![CDATA[<p>Open again.</p>]]></description></item>"
)
SNIPPETS = [
    "&#xD800;",  # a character reference to a lone surrogate (broke feedparser's HTML path)
    '<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">]>',
    "&a;",
    "&#0;",
    "<![CDATA[<script>alert(1)</script>]]>",
    "<description>&lt;img src=x onerror=alert(1)&gt;</description>",
    "<title>\u202e\u0000\r\n</title>",
    "</channel>",
    "<item>",
    "\xff\xfe",
    "x" * 100_000,
]

ATTACKS = {
    "billion laughs": '<!DOCTYPE r [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>',
    "quadratic blowup": '<!DOCTYPE r [<!ENTITY a "' + "x" * 50_000 + '">]>',
    "external entity": '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    "parameter entity": '<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]>',
    "external DTD + entity": '<!DOCTYPE r SYSTEM "http://127.0.0.1:9/x.dtd" [<!ENTITY e "e">]>',
    "entity in a comment-looking prolog": '<!-- x --><!DOCTYPE r [<!ENTITY e "e">]>',
}


@pytest.mark.parametrize("name", ATTACKS)
def test_entity_attacks_are_refused_before_parsing(name):
    body = rss(ITEM.replace("Bridge reopens", "&a;&b;&c;&d;&x;&e;"), ATTACKS[name])
    with pytest.raises(FeedRejected):
        parse_feed(body, url=FEED_URL, fetched_at=NOW)
    utf16 = body.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    with pytest.raises(FeedRejected):
        parse_feed(utf16, url=FEED_URL, fetched_at=NOW)


@pytest.mark.parametrize("where", ["<title>News &#xD800;</title>", "<description>&#xDFFF;</description>"])
def test_a_reference_to_a_lone_surrogate_is_a_clear_feed_error_or_read_safely(where, db):
    body = rss(ITEM.replace("<title>Bridge reopens</title>", where))
    try:
        parsed = parse_feed(body, url=FEED_URL, fetched_at=NOW)
    except FeedRejected:
        return
    ingest_entries(None, parsed.entries, now=NOW)
    assert_stored_articles_are_safe()


def test_a_feed_of_many_thousand_items_is_read_up_to_the_cap():
    body = rss(
        "".join(
            ITEM.replace("?p=1", f"?p={n}").replace("/bridge/", f"/a{n}/") for n in range(MAX_ENTRIES * 6)
        )
    )
    assert len(parse_feed(body, url=FEED_URL, fetched_at=NOW).entries) <= MAX_ENTRIES


@given(
    pieces=st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(SNIPPETS) | st.text(max_size=40)), max_size=4
    ),
    noise=st.binary(max_size=200),
)
@hsettings(examples, max_examples=20)
@pytest.mark.django_db
def test_mangled_feeds_fail_cleanly_or_store_only_safe_articles(pieces, noise):
    body = rss(ITEM * 3)
    for position, snippet in pieces:
        at = position % (len(body) + 1)
        body = body[:at] + snippet.encode("utf-8", "surrogatepass") + body[at:]
    for document in (body, noise, body + noise):
        try:
            parsed = parse_feed(document, url=FEED_URL, fetched_at=NOW)
        except FeedError:
            continue
        ingest_entries(None, parsed.entries, now=NOW)
    assert_stored_articles_are_safe()


def assert_stored_articles_are_safe():
    for article in Article.objects.all():
        for text in (article.title, article.author, article.guid, article.url):
            assert not any(unicodedata.category(ch) == "Cc" for ch in text), repr(text)
        assert_inert(article.excerpt)
        assert article.url.startswith(("http://", "https://"))


hostile_text = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.sampled_from(
        [
            "Title\r\nBcc: victim@example.org",
            "<script>alert(1)</script>",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
            "\u202eevil\u200b\ufeff",
            "%recipient.unsubscribe_url%",
            "x" * 300_000,
            "<a href=javascript:alert(1)>x</a><img src=x onerror=alert(2)>",
        ]
    ),
)


@given(
    title=hostile_text, author=hostile_text, excerpt=hostile_text, html=hostile_text, category=hostile_text
)
@examples
@pytest.mark.django_db
def test_the_article_api_stores_only_clean_values_or_refuses(title, author, excerpt, html, category):
    _, token = create_api_source("CMS")
    payload = {
        "title": title,
        "url": "https://news.example/story/",
        "author": author,
        "excerpt": excerpt,
        "html": html,
        "categories": [category],
    }
    before = Article.objects.count()
    response = Client().post(
        "/api/articles",
        json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code in (200, 201, 400, 413), response.status_code
    if response.status_code >= 400:
        assert Article.objects.count() == before
        assert "error" in response.json()
    assert_stored_articles_are_safe()
