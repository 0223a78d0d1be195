"""Rendering an edition: MJML once per segment, topic filtering, escaping, placeholders."""

import io
import re

import pytest
from django.test import override_settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mailer import rendering
from mailer.models import Digest, DigestArticle, RenderedSegment
from mailer.rendering import (
    apply_merge_data,
    build_segment,
    recipient_merge_data,
    render_segment,
)
from subscribers.models import Frequency
from subscribers.tokens import Purpose, read_token
from tests.factories import ArticleFactory, DigestFactory, SubscriberFactory, TopicFactory

pytestmark = pytest.mark.django_db


def make_digest(*articles, **fields) -> Digest:
    digest = DigestFactory(**fields)
    for position, article in enumerate(articles):
        DigestArticle.objects.create(digest=digest, article=article, position=position)
    return digest


@pytest.fixture
def topics():
    return TopicFactory(slug="politics", name="Politics"), TopicFactory(slug="sport", name="Sport")


def test_rendered_digest_has_masthead_articles_links_footer_and_placeholders(settings):
    settings.PUBLICATION_NAME = "The Riverside Courier"
    settings.PUBLICATION_POSTAL_ADDRESS = "1 Market Square, Riverside"
    first = ArticleFactory(
        title="Bridge reopens",
        url="https://example.com/news/bridge/",
        image_url="https://example.com/img/bridge.jpg",
        excerpt="<p>The <strong>old bridge</strong> is open again.</p>",
    )
    second = ArticleFactory(title="Market day moves", url="https://example.com/news/market/")
    digest = make_digest(first, second, subject="Your Tuesday briefing", preview_text="Bridge, market")

    rendered = render_segment(digest, "")

    assert rendered.article_count == 2
    assert rendered.subject == "Your Tuesday briefing"
    page = rendered.html
    assert "The Riverside Courier" in page
    assert "Bridge, market" in page  # preview text
    assert 'href="https://example.com/news/bridge/"' in page
    assert 'src="https://example.com/img/bridge.jpg"' in page
    assert "<strong>old bridge</strong>" in page
    assert "Read more" in page
    assert page.index("Bridge reopens") < page.index("Market day moves")
    assert "1 Market Square, Riverside" in page
    assert "because you signed up for the daily newsletter" in page
    assert 'href="%recipient.unsubscribe_url%"' in page
    assert 'href="%recipient.preferences_url%"' in page
    assert "%recipient.greeting_html%" in page
    text = rendered.text
    assert "Bridge reopens" in text and "The old bridge is open again." in text
    assert "Read more: https://example.com/news/bridge/" in text
    assert "Unsubscribe: %recipient.unsubscribe_url%" in text
    assert "%recipient.greeting%" in text
    assert "<" not in text


def test_render_segment_compiles_once_per_segment_for_many_recipients(topics):
    politics, sport = topics
    a1, a2 = ArticleFactory(), ArticleFactory()
    a1.topics.set([politics])
    a2.topics.set([sport])
    digest = make_digest(a1, a2)
    recipients = []
    for i in range(12):
        subscriber = SubscriberFactory()
        subscriber.set_topics([[politics], [sport], [politics, sport], []][i % 4])
        recipients.append(subscriber)
    segments = {s.segment_key for s in recipients}
    assert len(segments) == 4

    before = rendering.compilations()
    for subscriber in recipients:
        render_segment(digest, subscriber.segment_key)
    assert rendering.compilations() - before == 4
    assert RenderedSegment.objects.filter(digest=digest).count() == 4
    # Asked again later (a retried batch): the stored rendering, no compilation.
    render_segment(Digest.objects.get(pk=digest.pk), recipients[0].segment_key)
    assert rendering.compilations() - before == 4


def test_subscribers_receive_only_articles_of_their_topics(topics):
    politics, sport = topics
    vote = ArticleFactory(title="Council vote tonight")
    vote.topics.set([politics])
    match = ArticleFactory(title="Derby ends in a draw")
    match.topics.set([sport])
    weather = ArticleFactory(title="Storm warning for the weekend")  # no topic: for everyone
    digest = make_digest(vote, match, weather)

    politics_only = render_segment(digest, str(politics.pk))
    assert politics_only.article_count == 2
    assert "Council vote tonight" in politics_only.html and "Storm warning" in politics_only.html
    assert "Derby ends" not in politics_only.html and "Derby ends" not in politics_only.text
    assert "on Politics" in politics_only.text

    everything = render_segment(digest, "")
    assert everything.article_count == 3
    both = render_segment(digest, f"{sport.pk},{politics.pk}")
    assert both.article_count == 3
    assert both.segment_key == ",".join(sorted([str(politics.pk), str(sport.pk)], key=int))


def test_segment_matching_no_article_renders_nothing(topics):
    politics, sport = topics
    vote = ArticleFactory()
    vote.topics.set([politics])
    digest = make_digest(vote)
    before = rendering.compilations()
    rendered = render_segment(digest, str(sport.pk))
    assert rendered.article_count == 0
    assert rendered.html == "" and rendered.text == ""
    assert rendering.compilations() == before


def test_invalid_segment_key_is_refused():
    digest = make_digest(ArticleFactory())
    with pytest.raises(rendering.InvalidSegment):
        render_segment(digest, "1,abc")
    assert not RenderedSegment.objects.exists()


def test_hostile_article_fields_are_escaped_in_html_and_plain_in_text():
    hostile = ArticleFactory(
        title='<script>alert("t")</script> Q&A "quoted" %recipient.unsubscribe_url%',
        url='https://example.com/a?x=1&y="><script>alert(1)</script>',
        image_url="javascript:alert(1)",
        author="<img src=x onerror=alert(1)>",
        excerpt='<p onclick="evil()">Hi <script>alert(2)</script><a href="javascript:alert(3)">x</a>'
        "</mj-text><mj-raw><b>raw</b></mj-raw></p>",
    )
    bad_link = ArticleFactory(title="Bad link", url="javascript:alert(4)")
    digest = make_digest(hostile, bad_link, subject="<b>Subject</b>", intro="<i>intro</i> & more")

    rendered = render_segment(digest, "")
    page = rendered.html

    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt; Q&amp;A &quot;quoted&quot;" in page
    assert "onerror" not in page.replace("onerror=alert(1)&gt;", "")  # the author is text, not a tag
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "onclick" not in page and "javascript:" not in page
    assert "<mj-raw>" not in page and "</mj-text>" not in page
    assert "&lt;i&gt;intro&lt;/i&gt; &amp; more" in page
    assert "y=&quot;&gt;&lt;script&gt;" in page  # the URL stays one attribute value
    # A title that spells a placeholder is not filled in by the provider.
    assert page.count("%recipient.unsubscribe_url%") == 1
    assert rendered.text.count("%recipient.unsubscribe_url%") == 1
    # The text part is plain text: the title reads as written, with no markup added.
    assert '<script>alert("t")</script> Q&A "quoted"' in rendered.text
    assert "alert(2)" not in rendered.text  # script content was removed by sanitising
    assert "Bad link" in rendered.text and "javascript:" not in rendered.text


def test_recipient_merge_data_fills_every_placeholder_with_escaped_values():
    subscriber = SubscriberFactory(name='Ann <b>"Bee"</b> & Co')
    digest = make_digest(ArticleFactory(), subject="Edition")
    rendered = render_segment(digest, "")

    data = recipient_merge_data(subscriber_uuid=subscriber.uuid, name=subscriber.name, digest_id=digest.pk)

    assert {"unsubscribe_url", "preferences_url", "one_click_url"} <= set(data)
    assert all(isinstance(v, str) for v in data.values())
    page = apply_merge_data(rendered.html, data)
    text = apply_merge_data(rendered.text, data)
    assert "%recipient." not in page and "%recipient." not in text
    assert "Hello Ann &lt;b&gt;&quot;Bee&quot;&lt;/b&gt; &amp; Co," in page
    assert 'Hello Ann <b>"Bee"</b> & Co,' in text
    unsubscribe = re.search(r'href="([^"]+/unsubscribe/[^"]+)"', page).group(1)
    assert unsubscribe.endswith(f"/?d={digest.pk}")
    token = unsubscribe.split("/unsubscribe/")[1].split("/")[0]
    assert read_token(Purpose.UNSUBSCRIBE, token) == subscriber.uuid
    assert data["one_click_url"].endswith(f"/one-click/?d={digest.pk}")


def test_greeting_without_a_name():
    data = recipient_merge_data(subscriber_uuid=SubscriberFactory().uuid, name="", digest_id=None)
    assert data["greeting"] == "Hello,"
    assert "?d=" not in data["unsubscribe_url"]


def test_apply_merge_data_is_one_pass():
    data = {"name": "%recipient.unsubscribe_url%", "unsubscribe_url": "https://x/u/"}
    assert apply_merge_data("%recipient.name% %recipient.unsubscribe_url%", data) == (
        "%recipient.unsubscribe_url% https://x/u/"
    )


@override_settings(PROVIDER_MERGE_FIELD="{{{{{}}}}}")
def test_placeholders_follow_the_provider_syntax():
    digest = make_digest(ArticleFactory())
    content = build_segment(digest, "")
    assert 'href="{{unsubscribe_url}}"' in content.html
    assert "%recipient." not in content.html


def test_instant_alert_uses_the_alert_template():
    article = ArticleFactory(title="Breaking: river floods the square")
    digest = make_digest(article, frequency=Frequency.INSTANT, subject=article.title)
    rendered = render_segment(digest, "")
    assert "NEWS ALERT" in rendered.html and "NEWS ALERT" in rendered.text
    assert "news alerts" in rendered.text
    assert "Breaking: river floods the square" in rendered.html


def test_render_digest_command_writes_the_file_and_prints_the_time(tmp_path):
    from django.core.management import CommandError, call_command

    digest = make_digest(ArticleFactory(title="Harbour news"))
    out = tmp_path / "edition.html"
    stdout = io.StringIO()
    call_command("render_digest", str(digest.pk), "--out", str(out), stdout=stdout)
    html = out.read_text()
    assert "Harbour news" in html and "%recipient." not in html
    assert re.search(r"1 articles, [\d.]+ KB HTML, [\d.]+ KB text in [\d.]+ ms", stdout.getvalue())
    call_command("render_digest", str(digest.pk), "--out", str(out), "--raw", stdout=stdout)
    assert "%recipient.unsubscribe_url%" in out.read_text()
    assert not RenderedSegment.objects.exists()  # a look, not a send
    with pytest.raises(CommandError, match="segment"):
        call_command("render_digest", str(digest.pk), "--segment", "x", "--out", str(out))
    with pytest.raises(CommandError, match="no edition"):
        call_command("render_digest", "999999", "--out", str(out))


def test_rendering_costs_the_same_few_queries_for_any_number_of_articles(topics):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    politics, _ = topics
    counts = []
    for size in (2, 30):
        articles = [ArticleFactory() for _ in range(size)]
        for article in articles[::2]:
            article.topics.set([politics])
        digest = make_digest(*articles)
        with CaptureQueriesContext(connection) as queries:
            rendered = render_segment(digest, str(politics.pk))
        assert rendered.article_count == size  # half of the topic, half for everyone
        counts.append(len(queries))
        with CaptureQueriesContext(connection) as again:
            render_segment(digest, str(politics.pk))
        assert len(again) == 1  # stored: one lookup
    assert counts[0] == counts[1] <= 10


# Text as a database stores it (PostgreSQL refuses NUL), with markup-ish characters favoured.
TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("<>&\"'/=:% "), st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
    ),
)


def tag_names(page: str) -> set[str]:
    return {t.lower() for t in re.findall(r"<\s*([a-zA-Z][\w:-]*)", page)}


@hypothesis_settings(max_examples=40, deadline=None)
@given(
    title=TEXT.filter(str.strip).map(lambda t: t[:80]),
    excerpt=st.one_of(
        TEXT.map(lambda t: t[:200]),
        st.sampled_from(
            ["<script>alert(1)</script>", '<a href="javascript:x">y</a>', "</mj-text><mj-raw>x</mj-raw>"]
        ),
    ),
    author=TEXT.map(lambda t: t[:40]),
)
def test_any_article_text_comes_out_escaped(title, excerpt, author):
    from django.db import transaction

    with transaction.atomic():
        article = ArticleFactory(title=title, excerpt=excerpt, author=author)
        digest = make_digest(article)
        content = build_segment(digest, "")
        plain = build_segment(make_digest(ArticleFactory(title="x", excerpt="", author="x")), "")
        transaction.set_rollback(True)
    # No markup from outside survives except the excerpt's allow-listed tags.
    assert tag_names(content.html) <= tag_names(plain.html) | rendering.EXCERPT_TAGS
    assert "javascript:" not in content.html.lower()
    assert "%recipient.unsubscribe_url%" in content.html
    assert content.html.count('href="%recipient.unsubscribe_url%"') == 1
