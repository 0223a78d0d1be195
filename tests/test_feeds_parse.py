"""Reading feeds into articles: the shapes WordPress and Atom produce, and documents we refuse."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mailer.articles import Outcome, ingest_entries
from mailer.feeds import FeedRejected, parse_feed
from mailer.models import Article
from tests.factories import SourceFactory, TopicFactory
from tests.feedsamples import ATOM, BILLION_LAUGHS, EXTERNAL_ENTITY, HTML_PAGE, wp_feed, wp_item

FEED_URL = "https://news.example/feed/"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def parse(body: str, url: str = FEED_URL):
    return parse_feed(body.encode(), url=url, fetched_at=NOW)


def test_wordpress_item_becomes_a_clean_article(db):
    politics = TopicFactory(slug="politics", name="Politics")
    local = TopicFactory(slug="local", name="Local", categories="Local News\nRiverside")
    TopicFactory(slug="sport", name="Sport")
    feed = wp_feed(
        wp_item(
            1,
            categories=("POLITICS", "local news", "Uncategorized"),
            pub_date=NOW - timedelta(hours=3),
            description=(
                '<p>The council approved <a href="/budget">the budget</a> &amp; more.'
                "<script>alert(1)</script> [&#8230;]</p>"
            ),
            content='<p><img src="/wp-content/uploads/council.jpg" alt=""> Full text.</p>',
        )
    )
    parsed = parse(feed)
    assert parsed.site_url == "https://news.example"
    result = ingest_entries(SourceFactory(), parsed.entries, now=NOW)

    article = Article.objects.get()
    assert result.created_ids == [article.id]
    assert article.guid == "https://news.example/?p=1"
    assert article.url == "https://news.example/2026/11/story-1/"
    assert article.title == "Council\u2019s budget, part 1"
    assert article.excerpt == (
        '<p>The council approved <a href="https://news.example/budget" rel="noopener">the budget</a> &amp; more.</p>'
    )
    assert article.image_url == "https://news.example/wp-content/uploads/council.jpg"
    assert article.author == "Jane Doe"
    assert article.categories == ["POLITICS", "local news", "Uncategorized"]
    assert set(article.topics.all()) == {politics, local}
    assert article.published_at == NOW - timedelta(hours=3)


def test_yoast_footer_and_read_more_endings_are_trimmed(db):
    ingest_entries(None, parse(wp_feed(wp_item(2))).entries, now=NOW)
    assert Article.objects.get().excerpt == "<p>What happened in story 2, in a sentence or two.</p>"


def test_missing_and_future_dates_become_the_fetch_time(db):
    feed = wp_feed(wp_item(1, pub_date=None), wp_item(2, pub_date=NOW + timedelta(days=2)))
    entries = parse(feed).entries
    assert [e.published_at for e in entries] == [NOW, NOW]


def test_item_without_guid_is_keyed_by_its_url(db):
    feed = wp_feed(wp_item(1, guid=None))
    ingest_entries(None, parse(feed).entries, now=NOW)
    assert Article.objects.get().guid == "https://news.example/2026/11/story-1/"


def test_relative_item_link_is_made_absolute_and_items_without_link_skipped(db):
    feed = wp_feed(wp_item(1, link="/2026/11/relative/"), wp_item(2, link="", guid=None))
    result = ingest_entries(None, parse(feed).entries, now=NOW)
    assert list(Article.objects.values_list("url", flat=True)) == ["https://news.example/2026/11/relative/"]
    assert len(result.created_ids) == 1


@pytest.mark.parametrize(
    "extra, expected",
    [
        ('<media:content url="https://cdn.example/m.jpg" medium="image" />', "https://cdn.example/m.jpg"),
        ('<enclosure url="/e.png" length="1" type="image/png" />', "https://news.example/e.png"),
        ('<media:thumbnail url="https://cdn.example/t.jpg" />', "https://cdn.example/t.jpg"),
        ('<enclosure url="https://cdn.example/a.mp3" length="1" type="audio/mpeg" />', ""),
    ],
)
def test_image_from_media_content_enclosure_or_thumbnail(db, extra, expected):
    entries = parse(wp_feed(wp_item(1, extra=extra))).entries
    assert entries[0].image_url == expected


def test_atom_feed(db):
    TopicFactory(slug="transport", name="Transport")
    parsed = parse(ATOM, url="https://blog.example/feed.atom")
    assert parsed.title == "Atom & Eve"
    ingest_entries(None, parsed.entries, now=NOW)
    bridge, content_only = Article.objects.order_by("-published_at")
    assert bridge.title == "Bridge reopens"
    assert bridge.url == "https://blog.example/posts/bridge"
    assert bridge.guid == "urn:uuid:bridge"
    assert bridge.image_url == "https://blog.example/img/bridge.jpg"
    assert bridge.author == "Sam Writer"
    assert bridge.excerpt == "<p>The bridge is open again.</p>"
    assert bridge.published_at == datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    assert [t.slug for t in bridge.topics.all()] == ["transport"]
    # No summary: the excerpt comes from the content; its image is the article's image.
    assert content_only.excerpt == "<p>Body text.</p>"
    assert content_only.image_url == "https://blog.example/pics/a.png"  # xml:base
    assert content_only.published_at == datetime(2026, 11, 19, 8, 0, tzinfo=UTC)


def test_html_entities_undefined_in_xml_are_tolerated(db):
    feed = wp_feed(wp_item(1, title="Caf&eacute; &amp; bar&nbsp;opens"))
    assert parse(feed).entries[0].title.startswith("Caf")
    ingest_entries(None, parse(feed).entries, now=NOW)
    assert Article.objects.get().title == "Café & bar opens"


def test_billion_laughs_is_refused_before_parsing():
    with pytest.raises(FeedRejected, match="entities"):
        parse(BILLION_LAUGHS)


def test_external_entity_is_refused():
    with pytest.raises(FeedRejected, match="entities"):
        parse(EXTERNAL_ENTITY)


def test_entity_declarations_in_utf16_are_refused_too():
    with pytest.raises(FeedRejected, match="entities"):
        parse_feed(
            BILLION_LAUGHS.replace('<?xml version="1.0"?>', "").encode("utf-16"), url=FEED_URL, fetched_at=NOW
        )


@pytest.mark.parametrize(
    "body", [HTML_PAGE, "", "   ", "not xml at all", '{"json": true}', "<rss><channel><item>"]
)
def test_documents_that_are_not_feeds_are_refused(body):
    with pytest.raises(FeedRejected):
        parse(body)


def test_re_reading_the_same_feed_changes_nothing(db):
    feed = parse(wp_feed(*(wp_item(n) for n in range(1, 6)))).entries
    first = ingest_entries(None, feed, now=NOW)
    again = ingest_entries(None, feed, now=NOW + timedelta(minutes=10))
    assert len(first.created_ids) == 5
    assert again.created_ids == [] and again.updated_ids == []
    assert {outcome for _pk, outcome in again.outcomes.values()} == {Outcome.UNCHANGED}
    assert Article.objects.count() == 5


def test_bare_text_summary_becomes_a_paragraph(db):
    feed = wp_feed(wp_item(1, description="Plain summary &amp; more [&#8230;]"))
    ingest_entries(None, parse(feed).entries, now=NOW)
    assert Article.objects.get().excerpt == "<p>Plain summary &amp; more</p>"


def test_same_url_under_another_key_is_the_same_article(db):
    ingest_entries(None, parse(wp_feed(wp_item(1))).entries, now=NOW)
    renamed = parse(wp_feed(wp_item(1, guid="urn:cms:1", title="New title"))).entries
    result = ingest_entries(None, renamed, now=NOW + timedelta(minutes=1))
    article = Article.objects.get()
    assert result.updated_ids == [article.id]
    assert (article.guid, article.title) == ("https://news.example/?p=1", "New title")


def test_duplicate_entries_in_one_feed_are_stored_once(db):
    feed = wp_feed(wp_item(1), wp_item(1, title="Older copy"), wp_item(2, guid="urn:x", link=""))
    entries = parse(feed).entries
    entries.append(entries[0].__class__(url=entries[0].url, title="Same URL", guid="urn:other"))
    ingest_entries(None, entries, now=NOW)
    assert list(Article.objects.values_list("title", flat=True)) == ["Council\u2019s budget, part 1"]


def test_ingesting_a_big_feed_takes_a_constant_number_of_queries(db, django_assert_max_num_queries):
    TopicFactory(slug="politics", name="Politics")
    entries = parse(wp_feed(*(wp_item(n) for n in range(150)))).entries
    with django_assert_max_num_queries(20):  # SQLite splits big INSERTs in a few
        result = ingest_entries(None, entries, now=NOW)
    assert len(result.created_ids) == 150
    changed = [replace(entry, title=f"Changed {n}") for n, entry in enumerate(entries)]
    with django_assert_max_num_queries(20):
        result = ingest_entries(None, changed, now=NOW + timedelta(minutes=1))
    assert len(result.updated_ids) == 150


VALID = wp_feed(wp_item(1), wp_item(2)).encode()


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.tuples(st.integers(0, len(VALID)), st.integers(0, len(VALID)), st.binary(max_size=20)).map(
            lambda cut: VALID[: cut[0]] + cut[2] + VALID[cut[1] :]
        ),
    )
)
def test_any_bytes_either_parse_or_are_refused_cleanly(body):
    try:
        parsed = parse_feed(body, url=FEED_URL, fetched_at=NOW)
    except FeedRejected:
        return
    for entry in parsed.entries:
        assert entry.url.startswith(("http://", "https://"))
        assert entry.published_at <= NOW


@pytest.mark.parametrize(
    "body",
    [
        # The DOCTYPE hidden behind things that look like the start of the root element or CDATA.
        '<?xml version="1.0"?><!-- <rss --><!DOCTYPE rss [<!ENTITY a "x">]><rss version="2.0"><channel/></rss>',
        '<?pi <![CDATA[?><!DOCTYPE rss [<!ENTITY a "x">]><rss version="2.0"><channel>]]></channel></rss>',
        '<!DOCTYPE rss SYSTEM "<![CDATA[" [<!ENTITY a "x">]><rss version="2.0"><channel>]]></channel></rss>',
        # Not well-formed, so expat gives up: the text check still finds the declaration.
        '<!DOCTYPE rss [<!ENTITY a "&a;&a;"> <<>]><rss version="2.0"></rss>',
    ],
    ids=["comment", "processing-instruction", "system-id", "malformed"],
)
def test_hidden_entity_declarations_are_found(body):
    with pytest.raises(FeedRejected, match="entities"):
        parse(body)


def test_entity_talk_inside_cdata_is_just_text(db):
    feed = wp_feed(wp_item(1, description="<p>How <!ENTITY declarations work in XML.</p>"))
    entries = parse(feed).entries
    assert len(entries) == 1
