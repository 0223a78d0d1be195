"""The editors' screens for sources and articles: pages load, actions work, input is sanitised."""

import re
import time

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from mailer.models import Article, Source
from tests.factories import ArticleFactory, SourceFactory, TopicFactory
from tests.feedsamples import wp_feed, wp_item


@pytest.fixture
def editor(db) -> Client:
    user = User.objects.create_user("editor", "editor@example.com", "pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="mailer", content_type__model__in=["source", "article"]
        )
    )
    client = Client()
    client.force_login(user)
    return client


def test_source_and_article_pages_load(editor):
    topic = TopicFactory(slug="politics", name="Politics")
    source = SourceFactory(last_error="HTTP 500 <script>alert(1)</script>", failure_count=2)
    api_source = SourceFactory(kind=Source.Kind.API, url="", token_prefix="nl_abcde", token_hash="x" * 64)
    article = ArticleFactory(source=source, title="Bridge <b>reopens</b>", author="Sam")
    article.topics.add(topic)

    pages = [
        "/admin/mailer/source/",
        f"/admin/mailer/source/{source.id}/change/",
        f"/admin/mailer/source/{api_source.id}/change/",
        "/admin/mailer/source/add/",
        "/admin/mailer/article/",
        "/admin/mailer/article/?q=bridge",
        f"/admin/mailer/article/?source__id__exact={source.id}",
        f"/admin/mailer/article/?topics__id__exact={topic.id}",
        f"/admin/mailer/article/?published_at__year={article.published_at.year}",
        f"/admin/mailer/article/{article.id}/change/",
        "/admin/mailer/article/add/",
    ]
    for page in pages:
        response = editor.get(page)
        assert response.status_code == 200, page
    listing = editor.get("/admin/mailer/source/").content.decode()
    assert "failing (2 times)" in listing
    assert "<script>alert(1)</script>" not in listing
    assert "nl_abcde" in listing
    articles = editor.get(f"/admin/mailer/article/?topics__id__exact={topic.id}").content.decode()
    assert "Bridge &lt;b&gt;reopens&lt;/b&gt;" in articles


def test_poll_now_action_ingests_and_reports(editor, feed_server, settings):
    settings.FEED_TIMEOUT = 2
    good = SourceFactory(name="Site", url=feed_server.add("/feed/", wp_feed(wp_item(1), wp_item(2))))
    bad = SourceFactory(name="Broken", url=feed_server.add("/broken/", "no", status=500))

    response = editor.post(
        "/admin/mailer/source/",
        {"action": "poll_now", "_selected_action": [good.id, bad.id]},
        follow=True,
    )

    page = response.content.decode()
    assert "Site: fetched: 2 created." in page
    assert "Broken: failed: The feed answered HTTP 500" in page
    assert Article.objects.filter(source=good).count() == 2
    bad.refresh_from_db()
    assert bad.failure_count == 1


def test_create_api_token_action_shows_the_token_once(editor):
    source = SourceFactory(name="CMS", kind=Source.Kind.API, url="")

    response = editor.post(
        "/admin/mailer/source/", {"action": "create_api_token", "_selected_action": [source.id]}
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token = re.search(r'value="(nl_[^"]+)"', response.content.decode()).group(1)
    source.refresh_from_db()
    assert source.token_hash == Source.hash_token(token)
    assert source.token_prefix == token[:8]
    # It is not shown again anywhere.
    assert token not in editor.get(f"/admin/mailer/source/{source.id}/change/").content.decode()
    assert token not in editor.get("/admin/mailer/source/").content.decode()


def test_token_action_refuses_feed_sources(editor):
    source = SourceFactory()
    response = editor.post(
        "/admin/mailer/source/", {"action": "create_api_token", "_selected_action": [source.id]}, follow=True
    )
    assert "tokens are for API sources" in response.content.decode()
    source.refresh_from_db()
    assert source.token_hash == ""


def test_feed_source_needs_an_http_address(editor):
    response = editor.post(
        "/admin/mailer/source/add/", {"name": "Feed", "kind": "feed", "url": "", "is_active": "on"}
    )
    assert response.status_code == 200
    assert "A feed needs its http or https address." in response.content.decode()
    assert not Source.objects.exists()


def test_article_saved_in_the_admin_is_sanitised_and_mapped_to_topics(editor):
    sport = TopicFactory(slug="sport", name="Sport")
    response = editor.post(
        "/admin/mailer/article/add/",
        {
            "title": "<i>Derby</i> &amp; more",
            "url": "https://news.example/derby/",
            "guid": "",
            "excerpt": '<p onclick="x()">Win <a href="javascript:alert(1)">link</a><script>bad()</script> '
            '<a href="/table">table</a></p>',
            "image_url": "",
            "author": "<b>Kim</b>",
            "categories": '["Sport"]',
            "published_at_0": "2026-11-25",
            "published_at_1": "10:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    article = Article.objects.get()
    assert article.title == "Derby & more"
    assert article.author == "Kim"
    assert article.guid == "https://news.example/derby/"
    assert article.excerpt == (
        '<p>Win <a rel="noopener">link</a> <a href="https://news.example/table" rel="noopener">table</a></p>'
    )
    assert list(article.topics.all()) == [sport]


def test_article_edit_keeps_guid_and_sanitises(editor):
    article = ArticleFactory()
    response = editor.post(
        f"/admin/mailer/article/{article.id}/change/",
        {
            "title": "Edited",
            "url": article.url,
            "excerpt": "<p>Fine <img src=x onerror=alert(1)></p>",
            "image_url": "javascript:alert(1)",
            "author": "",
            "categories": "[]",
            "published_at_0": "2026-11-25",
            "published_at_1": "10:00:00",
        },
    )
    assert response.status_code == 200  # the image address is refused
    assert "image_url" in response.context_data["adminform"].form.errors
    response = editor.post(
        f"/admin/mailer/article/{article.id}/change/",
        {
            "title": "Edited",
            "url": article.url,
            "excerpt": "<p>Fine <img src=x onerror=alert(1)></p>",
            "image_url": "",
            "author": "",
            "categories": "[]",
            "published_at_0": "2026-11-25",
            "published_at_1": "10:00:00",
        },
    )
    assert response.status_code == 302
    guid = article.guid
    article.refresh_from_db()
    assert (article.title, article.excerpt, article.guid) == ("Edited", "<p>Fine </p>", guid)


def test_article_added_in_the_admin_is_announced(editor, django_capture_on_commit_callbacks):
    from mailer.signals import articles_published

    received = []

    def receiver(sender, article_ids, **kwargs):
        received.append(article_ids)

    articles_published.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            editor.post(
                "/admin/mailer/article/add/",
                {
                    "title": "Breaking",
                    "url": "https://news.example/breaking/",
                    "categories": "[]",
                    "published_at_0": "2026-11-25",
                    "published_at_1": "10:00:00",
                },
            )
    finally:
        articles_published.disconnect(receiver)
    assert received == [[Article.objects.get().id]]


def test_adding_a_stored_article_again_is_refused(editor):
    ArticleFactory(guid="https://news.example/dup/", url="https://news.example/dup/")
    response = editor.post(
        "/admin/mailer/article/add/",
        {
            "title": "Again",
            "url": "https://news.example/dup/",
            "categories": "[]",
            "published_at_0": "2026-11-25",
            "published_at_1": "10:00:00",
        },
    )
    assert response.status_code == 200
    assert "This article is already stored." in response.content.decode()
    assert Article.objects.count() == 1


@pytest.mark.worker
def test_poll_now_for_many_sources_queues_them_for_the_worker(editor, celery_worker, feed_server, settings):
    settings.FEED_TIMEOUT = 2
    sources = [
        SourceFactory(url=feed_server.add(f"/f{n}/", wp_feed(wp_item(n, guid=f"urn:{n}")))) for n in range(4)
    ]
    response = editor.post(
        "/admin/mailer/source/",
        {"action": "poll_now", "_selected_action": [s.id for s in sources]},
        follow=True,
    )
    assert "4 sources queued for polling" in response.content.decode()
    deadline = time.monotonic() + 20
    while Article.objects.count() < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert Article.objects.count() == 4


def test_topics_can_be_set_from_categories_again(editor):
    article = ArticleFactory(categories=["Rugby"])
    sport = TopicFactory(slug="sport", name="Sport", categories="Rugby\nFootball")
    assert not article.topics.exists()
    response = editor.post(
        "/admin/mailer/article/", {"action": "remap_topics", "_selected_action": [article.id]}, follow=True
    )
    assert "Topics set from categories for 1 articles." in response.content.decode()
    assert list(article.topics.all()) == [sport]
