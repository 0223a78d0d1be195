"""Sanitising HTML and text from outside before it is stored."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.sanitize import clean_html, make_excerpt, plain_text, safe_url, text_length, trim_excerpt


def test_script_and_style_are_removed_with_their_content():
    html = '<p>Hello<script>alert("x")</script><style>p{}</style> world</p>'
    assert clean_html(html) == "<p>Hello world</p>"


def test_javascript_and_data_links_lose_their_target():
    cleaned = clean_html(
        '<a href="javascript:alert(1)">a</a><a href="data:text/html,x">b</a><a href="java\tscript:alert(1)">c</a>'
    )
    assert "javascript" not in cleaned.lower()
    assert "data:" not in cleaned
    assert "href" not in cleaned


def test_allowed_links_keep_target_and_get_noopener():
    cleaned = clean_html(
        '<a href="https://example.com/x" target="_blank" onclick="x()">x</a><a href="mailto:ed@example.com">m</a>'
    )
    assert cleaned == (
        '<a href="https://example.com/x" rel="noopener">x</a><a href="mailto:ed@example.com" rel="noopener">m</a>'
    )


def test_relative_links_are_made_absolute_or_dropped():
    assert clean_html('<a href="/news/1">x</a>', base_url="https://site.example/feed/") == (
        '<a href="https://site.example/news/1" rel="noopener">x</a>'
    )
    assert clean_html('<a href="/news/1">x</a>') == '<a rel="noopener">x</a>'


def test_tags_outside_the_allow_list_are_stripped_but_their_text_kept():
    cleaned = clean_html(
        '<div class="x"><h2>Head</h2><img src="https://x/i.jpg" onerror="x()"><p style="color:red">'
        "<em>a</em> <strong>b</strong> <iframe src=x></iframe><blockquote>q</blockquote></p></div>"
    )
    assert cleaned == "Head<p><em>a</em> <strong>b</strong> </p><blockquote>q</blockquote><p></p>"


def test_plain_text_strips_tags_unescapes_entities_and_collapses_whitespace():
    assert plain_text("Council&#8217;s <b>budget</b>\n\t passes &amp; more", max_length=100) == (
        "Council\u2019s budget passes & more"
    )
    assert plain_text("Doubly &amp;#8217; escaped", max_length=100) == "Doubly \u2019 escaped"
    assert plain_text("<script>alert(1)</script>Real", max_length=100) == "Real"
    assert plain_text("a\x00b\x1bc", max_length=100) == "abc"


def test_plain_text_is_capped_with_an_ellipsis():
    assert plain_text("word " * 100, max_length=20) == "word word word word…"
    assert len(plain_text("x" * 1000, max_length=200)) == 200


def test_wordpress_endings_are_trimmed():
    assert trim_excerpt("<p>The council met. [&#8230;]</p>") == "<p>The council met.</p>"
    assert trim_excerpt("<p>The council met. […]</p>") == "<p>The council met.</p>"
    assert trim_excerpt("<p>The council met [...]</p>") == "<p>The council met</p>"
    assert (
        trim_excerpt(
            '<p>Body.</p>\n<p>The post <a href="https://s/x">X</a> appeared first on <a href="https://s">S</a>.</p>'
        )
        == "<p>Body.</p>"
    )
    assert (
        trim_excerpt('<p>Body. <a href="https://s/x">Continue reading <span>X</span></a></p>')
        == "<p>Body.</p>"
    )


def test_long_bodies_become_an_excerpt_of_whole_paragraphs():
    body = "".join(f"<p>{f'Sentence number {i}. ' * 8}</p>" for i in range(10))
    excerpt = make_excerpt(body, max_chars=400)
    assert excerpt.startswith("<p>Sentence number 0.")
    assert excerpt.endswith("</p>")
    assert 100 < text_length(excerpt) <= 400


def test_one_huge_paragraph_is_cut_at_a_word():
    excerpt = make_excerpt("<p>" + "lorem ipsum " * 500 + "</p>", max_chars=100)
    assert excerpt.startswith("<p>lorem ipsum")
    assert excerpt.endswith(" …</p>")
    assert text_length(excerpt) <= 102


def test_safe_url_accepts_only_absolute_http_urls():
    assert safe_url("https://example.com/a") == "https://example.com/a"
    assert safe_url("/a", "https://example.com/feed") == "https://example.com/a"
    assert safe_url("javascript:alert(1)") == ""
    assert safe_url("https://exa mple.com/") == ""
    assert safe_url("http:///nohost") == ""
    assert safe_url("ftp://example.com/a") == ""


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>/=\"' &;:#abcdehijlnprstvx()1\n")), max_size=200))
def test_cleaning_never_lets_script_through_and_is_idempotent(value):
    cleaned = clean_html(value, base_url="https://example.com/")
    assert "<script" not in cleaned.lower()
    assert all(
        href.startswith(("https://", "http://", "mailto:")) for href in re.findall(r'href="([^"]*)"', cleaned)
    )
    assert clean_html(cleaned, base_url="https://example.com/") == cleaned


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.integers(min_value=2, max_value=200))
def test_plain_text_has_no_tags_or_control_characters_and_respects_the_cap(value, cap):
    text = plain_text(value, max_length=cap)
    assert len(text) <= cap
    assert "\n" not in text
    assert not any(ord(ch) < 32 for ch in text)
