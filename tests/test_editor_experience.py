"""What an editor met when using the admin for the first time, fixed: categories written as
JSON, "Deliverys", a sent edition described as "scheduled", an empty new edition without a word."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from mailer.models import Article, Digest
from subscribers.models import Frequency
from tests.factories import ArticleFactory, DigestFactory, TopicFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor(client):
    user = get_user_model().objects.create_superuser("erin", "erin@example.org", "pw-erin-1")
    client.force_login(user)
    return client


def article_form(**fields) -> dict:
    return {
        "title": "Mayor answers readers",
        "url": "https://news.example/mayor/",
        "guid": "",
        "excerpt": "<p>Parking and buses.</p>",
        "image_url": "",
        "author": "",
        "categories": "",
        "published_at_0": "2026-11-25",
        "published_at_1": "10:00:00",
        **fields,
    }


def test_categories_are_written_one_per_line_and_become_topics(editor):
    politics = TopicFactory(slug="politics", name="Politics")
    local = TopicFactory(slug="local-news", name="Local News")
    response = editor.post(
        reverse("admin:mailer_article_add"), article_form(categories="Politics\r\n Local News \r\n\r\n")
    )
    assert response.status_code == 302, response.content.decode()[:1000]
    article = Article.objects.get()
    assert article.categories == ["Politics", "Local News"]
    assert set(article.topics.all()) == {politics, local}

    page = editor.get(reverse("admin:mailer_article_change", args=[article.pk])).content.decode()
    # Shown as the editor wrote it, not as JSON.
    assert 'id="id_categories">\nPolitics\nLocal News</textarea>' in page


def test_categories_as_a_json_list_are_still_understood(editor):
    editor.post(reverse("admin:mailer_article_add"), article_form(categories='["Sport", "Rugby"]'))
    assert Article.objects.get().categories == ["Sport", "Rugby"]


@pytest.mark.parametrize("value", ['["Sport", 3]', "[not json"])
def test_broken_category_lists_are_refused_with_a_message(editor, value):
    response = editor.post(reverse("admin:mailer_article_add"), article_form(categories=value))
    assert response.status_code == 200
    assert "Write one category per line." in response.content.decode()
    assert not Article.objects.exists()


def test_the_ledger_and_editions_are_listed_in_plain_english(editor):
    page = editor.get(reverse("admin:index")).content.decode()
    assert "Deliveries" in page and "Batches" in page and "Editions" in page
    assert "Deliverys" not in page and "Batchs" not in page and ">Digests<" not in page
    page = editor.get(reverse("admin:mailer_digest_add")).content.decode()
    assert "Add edition" in page


def test_a_sent_edition_says_when_it_went_out_not_that_it_is_scheduled(editor, settings):
    settings.PUBLICATION_TIME_ZONE = "Europe/London"
    started = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    digest = DigestFactory(
        status=Digest.Status.SENT,
        scheduled_for=started,
        started_at=started,
        finished_at=started + timedelta(minutes=3),
    )
    page = editor.get(reverse("admin:mailer_digest_change", args=[digest.pk])).content.decode()
    # 08:00 UTC is 09:00 in London in summer.
    assert "Sending started Wednesday 1 July 2026, 09:00, finished 09:03 (Europe/London)." in page
    assert "Scheduled for" not in page


def test_a_new_edition_with_nothing_new_to_send_tells_the_editor(editor):
    ArticleFactory(published_at=timezone.now() - timedelta(hours=1))
    DigestFactory(
        status=Digest.Status.SENT,
        frequency=Frequency.DAILY,
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    response = editor.post(
        reverse("admin:mailer_digest_add"),
        {
            "subject": "Evening edition",
            "preview_text": "",
            "intro": "",
            "frequency": Frequency.DAILY,
            "digestarticle_set-TOTAL_FORMS": "0",
            "digestarticle_set-INITIAL_FORMS": "0",
        },
        follow=True,
    )
    assert "No article was published since the previous edition" in response.content.decode()
    assert not Digest.objects.get(subject="Evening edition").articles.exists()


def test_the_test_address_is_remembered_for_an_editor_without_one(client, local_provider):
    user = get_user_model().objects.create_superuser("first", "", "pw-first-1")  # as bootstrap makes it
    client.force_login(user)
    digest = DigestFactory()
    digest.articles.add(ArticleFactory(), through_defaults={"position": 0})
    page = reverse("admin:mailer_digest_change", args=[digest.pk])
    assert 'id="proof-to"' in client.get(page).content.decode()
    assert 'value="desk@example.org"' not in client.get(page).content.decode()

    response = client.post(
        reverse("admin:mailer_digest_send_test", args=[digest.pk]), {"to": "desk@example.org", "segment": ""}
    )
    assert response.status_code == 302
    assert [m["recipient"] for m in local_provider.wait_for(1)] == ["desk@example.org"]
    assert 'value="desk@example.org"' in client.get(page).content.decode()


def test_topics_list_shows_the_ids_the_embedded_sign_up_form_needs(editor):
    sport = TopicFactory(slug="sport", name="Sport")
    page = editor.get(reverse("admin:subscribers_topic_changelist")).content.decode()
    assert "Form value (id)" in page
    assert f'<td class="field-form_value">{sport.pk}</td>' in page


def test_send_edition_new_with_nothing_new_makes_no_empty_edition():
    with pytest.raises(CommandError, match="Nothing was published since the previous edition"):
        call_command("send_edition", "--new")
    assert not Digest.objects.exists()
