"""Script in anything that comes from outside (an article from the CMS API or a feed, a
reader's name) is removed or escaped everywhere it shows: the stored article, the email as the
provider received it, the editors' pages and the readers' pages."""

import json
import re
from html.parser import HTMLParser

import pytest
from django.test import Client

from mailer import sending
from mailer.articles import create_api_source
from mailer.models import Article, Batch, DigestArticle
from subscribers.tokens import Purpose, make_token
from tests.factories import DigestFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

HOSTILE_ARTICLE = {
    # Feeds and CMSs send titles as escaped text: the entities decode to a real <script> tag in
    # the stored plain text, which every page and email must then escape.
    "title": "&lt;script&gt;alert('title')&lt;/script&gt; Bridge <b>reopens</b>",
    "url": "https://news.example/2026/bridge/?q=%22%3E%3Cscript%3Ealert(0)%3C/script%3E",
    "author": "<script>alert('author')</script>Sam &lt;img src=x onerror=alert(2)&gt;",
    "excerpt": (
        '<p onclick="alert(3)">Open <a href="javascript:alert(4)">again</a><script>alert(5)</script>'
        '<img src="x" onerror="alert(6)"><iframe src="https://evil.example/"></iframe>'
        '<svg onload="alert(9)"></svg><style>p{}</style><a href="https://news.example/ok">ok</a></p>'
    ),
    "categories": ["<script>alert(7)</script>"],
}
HOSTILE_NAME = '"><img src=x onerror=alert(10)><script>alert(11)</script>'
SCRIPT_SCHEMES = ("javascript:", "vbscript:", "data:text")
ACTIVE_TAGS = {"script", "iframe", "svg", "object", "embed", "frame", "frameset", "base", "form", "math"}


class ActiveMarkup(HTMLParser):
    """Collects what a browser or mail client would run: script-like elements, event handler
    attributes and javascript: links. Escaped text (&lt;script&gt;) is data, not markup."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ACTIVE_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{tag} {name}=")
            target = re.sub(r"[\s\x00-\x1f]", "", value or "").lower()
            if name in ("href", "src", "action", "formaction") and target.startswith(SCRIPT_SCHEMES):
                self.found.append(f"{tag} {name}={value}")
            if tag == "img" and name == "src" and value == "x":
                self.found.append("<img src=x>")


def assert_inert(html: str) -> None:
    parser = ActiveMarkup()
    parser.feed(html)
    parser.close()
    assert not parser.found, parser.found


@pytest.fixture
def hostile_edition():
    _, token = create_api_source("CMS")
    response = Client().post(
        "/api/articles",
        json.dumps(HOSTILE_ARTICLE),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 201, response.content
    article = Article.objects.get()
    digest = DigestFactory(subject="Today")
    DigestArticle.objects.create(digest=digest, article=article, position=0)
    return digest, article


def test_the_checker_finds_active_markup():
    for html in ['<p onclick="x()">', "<SCRIPT>1</SCRIPT>", '<a href=" java\tscript:x()">', "<svg/onload=1>"]:
        with pytest.raises(AssertionError):
            assert_inert(html)
    assert_inert("<p>&lt;script&gt;alert(1)&lt;/script&gt; onerror=alert(1)</p>")


def test_the_stored_article_keeps_no_active_markup(hostile_edition):
    _, article = hostile_edition
    assert_inert(article.excerpt)
    assert 'href="https://news.example/ok"' in article.excerpt  # safe markup survives
    # Title and author are plain text: tags gone, entity-encoded ones kept as text to escape.
    assert "<b>" not in article.title and "reopens" in article.title
    assert "<script>alert('author')</script>" not in article.author


def test_the_email_as_received_is_inert_and_shows_the_text_escaped(hostile_edition, local_provider):
    digest, _ = hostile_edition
    SubscriberFactory(email="reader@example.org", name=HOSTILE_NAME)
    sending.start_edition(digest.pk)
    for batch_id in Batch.objects.filter(digest=digest).values_list("id", flat=True):
        sending.send_batch(batch_id)

    [message] = local_provider.messages(to="reader@example.org")
    assert_inert(message["html"])
    assert "&lt;script&gt;alert(" in message["html"]  # the title's text, escaped
    assert "&lt;img src=x onerror=alert(10)&gt;" in message["html"]  # the greeting, escaped
    assert "Bridge reopens" in message["text"]
    # The subject line is text: the provider got the edition's own subject, not article markup.
    assert message["subject"] == "Today"


def test_the_editors_pages_escape_the_article(hostile_edition, admin_client):
    digest, article = hostile_edition
    pages = [
        f"/admin/mailer/article/{article.pk}/change/",
        "/admin/mailer/article/",
        f"/admin/mailer/digest/{digest.pk}/change/",
        f"/admin/mailer/digest/{digest.pk}/preview/",
        f"/admin/mailer/digest/{digest.pk}/preview/html/",
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        body = response.content.decode()
        for payload in ("alert('title')</script>", "alert(6)", "alert(5)", "alert(10)"):
            # The payload may show as escaped text, never as markup.
            assert f"<script>{payload}" not in body and 'onerror="alert(6)"' not in body, (page, payload)
        assert "<script>alert('title')" not in body, page


def test_the_readers_pages_escape_their_name(client):
    reader = SubscriberFactory(email="reader@example.org", name=HOSTILE_NAME[:100])
    token = make_token(Purpose.PREFERENCES, reader.uuid)
    for page in (f"/preferences/{token}/", f"/unsubscribe/{make_token(Purpose.UNSUBSCRIBE, reader.uuid)}/"):
        body = client.get(page).content.decode()
        assert "<script>alert(11)" not in body and "<img src=x onerror" not in body, page
