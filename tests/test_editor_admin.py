"""The editors' admin for editions and schedules: pages, preview, test sends, the buttons."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from mailer.models import Delivery, Digest, DigestArticle, Schedule
from subscribers.models import Frequency
from tests.factories import ArticleFactory, DigestFactory, SubscriberFactory, TopicFactory

pytestmark = pytest.mark.django_db
S = Digest.Status


@pytest.fixture
def editor(client):
    user = get_user_model().objects.create_superuser(
        "editor", "editor@example.org", "pw-editor-1", first_name="Erin", last_name="Editor"
    )
    client.force_login(user)
    return client


def url(name: str, digest: Digest) -> str:
    return reverse(f"admin:mailer_digest_{name}", args=[digest.pk])


def edition(*titles: str, status=S.DRAFT, **fields) -> Digest:
    digest = DigestFactory(status=status, **fields)
    for i, title in enumerate(titles or ("A headline",)):
        DigestArticle.objects.create(digest=digest, article=ArticleFactory(title=title), position=i)
    return digest


ACTIONS = [
    "schedule",
    "send_now",
    "unschedule",
    "cancel",
    "reopen",
    "pause",
    "resume",
    "retry_failed",
    "send_test",
]


def test_anonymous_users_get_the_login_page_and_change_nothing(client):
    digest = edition(status=S.SCHEDULED, scheduled_for=timezone.now() + timedelta(days=1))
    for name in ["preview", "preview_html", "progress", "change"]:
        response = client.get(url(name, digest))
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    for name in ACTIONS:
        response = client.post(url(name, digest), {"when": "2030-01-01T07:00", "to": "x@example.org"})
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert Digest.objects.get(pk=digest.pk).status == S.SCHEDULED


def test_staff_without_permissions_are_refused(client):
    user = get_user_model().objects.create_user("intern", "intern@example.org", "pw", is_staff=True)
    client.force_login(user)
    digest = edition(status=S.SCHEDULED, scheduled_for=timezone.now() + timedelta(days=1))
    assert client.post(url("cancel", digest)).status_code == 403
    assert client.get(url("preview", digest)).status_code == 403
    assert Digest.objects.get(pk=digest.pk).status == S.SCHEDULED


def test_list_shows_status_and_figures(editor):
    sent = edition("Sent one", status=S.SENT, started_at=timezone.now())
    for status in [Delivery.Status.SENT] * 3 + [Delivery.Status.FAILED]:
        Delivery.objects.create(
            digest=sent, subscriber=SubscriberFactory(), status=status, sent_at=timezone.now()
        )
    edition("A draft")
    response = editor.get(reverse("admin:mailer_digest_changelist"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "3 / 4 (1)" in page
    assert "Draft" in page and "Sent" in page


def test_new_edition_gets_the_new_articles_by_default(editor):
    fresh = ArticleFactory(title="Fresh today", published_at=timezone.now() - timedelta(hours=2))
    response = editor.post(
        reverse("admin:mailer_digest_add"),
        {
            "subject": "Friday",
            "preview_text": "",
            "intro": "",
            "frequency": Frequency.DAILY,
            "digestarticle_set-TOTAL_FORMS": "0",
            "digestarticle_set-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    digest = Digest.objects.get(subject="Friday")
    assert list(digest.articles.all()) == [fresh]
    assert digest.status == S.DRAFT


def test_edition_page_shows_panel_and_buttons(editor):
    digest = edition("Bridge reopens")
    page = editor.get(url("change", digest)).content.decode()
    assert 'Status: <span id="edition-status">Draft</span>' in page
    for name in ["schedule", "send_now", "cancel", "send_test", "preview"]:
        assert url(name, digest) in page
    assert url("pause", digest) not in page
    assert 'value="editor@example.org"' in page


def test_preview_shows_html_and_text_for_a_topic_with_sample_personalisation(editor):
    politics, sport = TopicFactory(name="Politics"), TopicFactory(name="Sport")
    digest = edition("Council vote", "Derby draw")
    vote, derby = (link.article for link in DigestArticle.objects.filter(digest=digest).order_by("position"))
    vote.topics.set([politics])
    derby.topics.set([sport])

    page = editor.get(url("preview", digest), {"topic": [politics.pk]}).content.decode()
    assert "<iframe" in page and "1 article" in page
    assert "Council vote" in page and "Derby draw" not in page  # the text part, shown on the page
    assert "Hello Erin Editor," in page

    html_response = editor.get(url("preview_html", digest), {"segment": str(politics.pk)})
    assert html_response["X-Frame-Options"] == "SAMEORIGIN"
    html = html_response.content.decode()
    assert "Council vote" in html and "Derby draw" not in html
    assert "%recipient." not in html and "Hello Erin Editor," in html

    assert editor.get(url("preview", digest), {"topic": ["nope"]}).status_code == 400
    assert editor.get(url("preview_html", digest), {"segment": "99999"}).status_code == 400


def test_schedule_in_the_publishers_time_zone(editor, settings):
    settings.PUBLICATION_TIME_ZONE = "Europe/London"
    digest = edition()
    response = editor.post(url("schedule", digest), {"when": "2030-07-15T07:00"})
    assert response.status_code == 302
    digest.refresh_from_db()
    assert digest.status == S.SCHEDULED
    assert digest.scheduled_for == datetime(2030, 7, 15, 6, 0, tzinfo=UTC)  # 07:00 BST
    # Moved to a winter date: 07:00 GMT.
    editor.post(url("schedule", digest), {"when": "2030-01-15 07:00"})
    assert Digest.objects.get(pk=digest.pk).scheduled_for == datetime(2030, 1, 15, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "when, message",
    [
        ("not a date", "Enter a date and time"),
        ("2030-03-31T01:30", "be interpreted in time zone Europe/London"),  # clocks go forward through it
        ("2001-01-01T07:00", "That time has passed"),
    ],
)
def test_bad_schedule_times_are_refused_with_a_message(editor, when, message):
    digest = edition()
    response = editor.post(url("schedule", digest), {"when": when})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Digest.objects.get(pk=digest.pk).status == S.DRAFT


def test_send_now_cancel_and_state_conflicts(editor):
    digest = edition()
    assert editor.post(url("send_now", digest)).status_code == 302
    assert Digest.objects.get(pk=digest.pk).status in (S.SENDING, S.SENT)
    response = editor.post(url("cancel", digest))
    assert response.status_code == 409
    assert "can be cancelled" in response.content.decode()

    other = edition(status=S.SCHEDULED, scheduled_for=timezone.now() + timedelta(days=1))
    assert editor.post(url("cancel", other)).status_code == 302
    assert Digest.objects.get(pk=other.pk).status == S.CANCELLED
    assert editor.post(url("reopen", other)).status_code == 302
    assert Digest.objects.get(pk=other.pk).status == S.DRAFT

    empty = DigestFactory()
    assert editor.post(url("send_now", empty)).status_code == 409
    assert Digest.objects.get(pk=empty.pk).status == S.DRAFT


def test_buttons_are_post_only(editor):
    digest = edition()
    for name in ACTIONS:
        assert editor.get(url(name, digest)).status_code == 405
    assert Digest.objects.get(pk=digest.pk).status == S.DRAFT


def test_pause_and_resume_call_delivery(editor):
    digest = edition(status=S.SENDING, started_at=timezone.now(), fanout_done=True)
    Delivery.objects.create(digest=digest, subscriber=SubscriberFactory(), status=Delivery.Status.PENDING)
    assert editor.post(url("pause", digest)).status_code == 302
    assert Digest.objects.get(pk=digest.pk).status == S.PAUSED
    assert editor.post(url("pause", digest)).status_code == 409
    assert editor.post(url("resume", digest)).status_code == 302
    assert Digest.objects.get(pk=digest.pk).status == S.SENDING


def test_progress_while_sending(editor):
    digest = edition(status=S.SENDING, started_at=timezone.now(), fanout_done=True)
    for status in [
        Delivery.Status.SENT,
        Delivery.Status.SENT,
        Delivery.Status.FAILED,
        Delivery.Status.PENDING,
    ]:
        Delivery.objects.create(
            digest=digest, subscriber=SubscriberFactory(), status=status, error="x", sent_at=timezone.now()
        )
    data = editor.get(url("progress", digest)).json()
    assert data["status"] == "sending"
    assert (data["figures"]["sent"], data["figures"]["total"], data["figures"]["failed"]) == (2, 4, 1)
    page = editor.get(url("change", digest)).content.decode()
    assert "data-progress-url" in page and "Retry failed (1)" in page
    assert f"?digest__id__exact={digest.pk}&amp;status__exact=failed" in page


def test_send_a_test_reaches_the_provider_with_placeholders_filled(editor, local_provider):
    topic = TopicFactory(name="Local")
    digest = edition("Bridge reopens", subject="Tuesday briefing")
    DigestArticle.objects.get(digest=digest).article.topics.set([topic])

    response = editor.post(url("send_test", digest), {"to": "desk@example.org", "segment": str(topic.pk)})
    assert response.status_code == 302

    [message] = local_provider.wait_for(1)
    assert message["recipient"] == "desk@example.org"
    assert message["subject"] == "[TEST] Tuesday briefing"
    assert "Bridge reopens" in message["html"] and "Bridge reopens" in message["text"]
    assert "Hello Erin Editor," in message["html"]
    assert "%recipient." not in message["html"] and "%recipient." not in message["text"]
    assert re.search(r'href="http[^"]+/unsubscribe/[^"]+/\?d=\d+"', message["html"])
    assert not Delivery.objects.exists()
    assert Digest.objects.get(pk=digest.pk).status == S.DRAFT


@pytest.mark.parametrize(
    "to", ["not-an-address", "a@example.org\r\nBcc: victim@example.org", "a@x.org, b@y.org", ""]
)
def test_send_a_test_refuses_bad_addresses(editor, local_provider, to):
    digest = edition()
    response = editor.post(url("send_test", digest), {"to": to, "segment": ""})
    assert response.status_code == 400
    assert local_provider.messages() == []


def test_schedules_admin_computes_the_next_run_and_validates(editor):
    add = reverse("admin:mailer_schedule_add")
    response = editor.post(
        add,
        {
            "name": "Weekly round-up",
            "frequency": Frequency.WEEKLY,
            "weekday": "",
            "send_time": "08:00",
            "time_zone": "Europe/London",
            "subject_template": "{publication}: the week",
            "is_active": "on",
        },
    )
    assert response.status_code == 200 and "needs a weekday" in response.content.decode()
    response = editor.post(
        add,
        {
            "name": "Morning",
            "frequency": Frequency.DAILY,
            "weekday": "",
            "send_time": "07:00",
            "time_zone": "Mars/Base",
            "subject_template": "{publication}: {date}",
            "is_active": "on",
        },
    )
    assert response.status_code == 200 and "Unknown time zone" in response.content.decode()
    response = editor.post(
        add,
        {
            "name": "Morning",
            "frequency": Frequency.DAILY,
            "weekday": "",
            "send_time": "07:00",
            "time_zone": "Europe/London",
            "subject_template": "{publication}: {date}",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    schedule = Schedule.objects.get(name="Morning")
    assert schedule.next_run_at > timezone.now()
    assert editor.get(reverse("admin:mailer_schedule_changelist")).status_code == 200


def test_choosing_the_same_article_twice_is_an_error_not_a_crash(editor):
    digest = edition("Only one")
    link = DigestArticle.objects.get(digest=digest)
    other = ArticleFactory()
    response = editor.post(
        url("change", digest),
        {
            "subject": digest.subject,
            "preview_text": "",
            "intro": "",
            "digestarticle_set-TOTAL_FORMS": "3",
            "digestarticle_set-INITIAL_FORMS": "1",
            "digestarticle_set-0-id": str(link.pk),
            "digestarticle_set-0-digest": str(digest.pk),
            "digestarticle_set-0-article": str(link.article_id),
            "digestarticle_set-0-position": "0",
            "digestarticle_set-1-digest": str(digest.pk),
            "digestarticle_set-1-article": str(other.pk),
            "digestarticle_set-1-position": "1",
            "digestarticle_set-2-digest": str(digest.pk),
            "digestarticle_set-2-article": str(link.article_id),
            "digestarticle_set-2-position": "2",
        },
    )
    assert response.status_code == 200
    assert "Please correct" in response.content.decode()
    assert DigestArticle.objects.filter(digest=digest).count() == 1


def test_editor_reorders_articles_on_the_page(editor):
    digest = edition("First", "Second")
    first, second = DigestArticle.objects.filter(digest=digest).order_by("position")
    response = editor.post(
        url("change", digest),
        {
            "subject": "Renamed",
            "preview_text": "",
            "intro": "",
            "digestarticle_set-TOTAL_FORMS": "2",
            "digestarticle_set-INITIAL_FORMS": "2",
            "digestarticle_set-0-id": str(first.pk),
            "digestarticle_set-0-digest": str(digest.pk),
            "digestarticle_set-0-article": str(first.article_id),
            "digestarticle_set-0-position": "5",
            "digestarticle_set-1-id": str(second.pk),
            "digestarticle_set-1-digest": str(digest.pk),
            "digestarticle_set-1-article": str(second.article_id),
            "digestarticle_set-1-position": "1",
        },
    )
    assert response.status_code == 302
    ordered = DigestArticle.objects.filter(digest=digest).order_by("position")
    assert [link.article.title for link in ordered] == ["Second", "First"]
    assert Digest.objects.get(pk=digest.pk).subject == "Renamed"


def test_a_sent_edition_is_read_only_and_cannot_be_deleted(editor):
    digest = edition("Went out", status=S.SENT, started_at=timezone.now())
    page = editor.get(url("change", digest)).content.decode()
    assert 'name="subject"' not in page
    assert editor.get(url("delete", digest)).status_code == 403
    assert Digest.objects.filter(pk=digest.pk).exists()
    draft = edition("Not yet")
    assert editor.post(url("delete", draft), {"post": "yes"}).status_code == 302
    assert not Digest.objects.filter(pk=draft.pk).exists()


def test_add_new_articles_to_a_draft(editor):
    old = ArticleFactory(title="Chosen earlier", published_at=timezone.now() - timedelta(hours=5))
    digest = DigestFactory()
    DigestArticle.objects.create(digest=digest, article=old, position=0)
    fresh = ArticleFactory(title="Just published", published_at=timezone.now() - timedelta(minutes=5))
    assert editor.post(url("add_new_articles", digest)).status_code == 302
    titles = [link.article.title for link in DigestArticle.objects.filter(digest=digest).order_by("position")]
    assert titles == ["Chosen earlier", "Just published"]
    assert fresh.pk in {a.pk for a in digest.articles.all()}
    editor.post(url("add_new_articles", digest))
    assert DigestArticle.objects.filter(digest=digest).count() == 2


def test_renaming_a_schedule_keeps_its_next_run(editor):
    due = (timezone.now() - timedelta(seconds=20)).replace(microsecond=0)  # due, not yet ticked
    schedule = Schedule.objects.create(
        name="Morning", frequency=Frequency.DAILY, send_time=due.time(), time_zone="UTC", next_run_at=due
    )
    data = {
        "name": "Morning briefing",
        "frequency": Frequency.DAILY,
        "weekday": "",
        "send_time": schedule.send_time.strftime("%H:%M:%S"),
        "time_zone": "UTC",
        "initial-time_zone": "UTC",  # the page sends it: the field's default is a callable
        "subject_template": schedule.subject_template,
        "is_active": "on",
    }
    assert editor.post(reverse("admin:mailer_schedule_change", args=[schedule.pk]), data).status_code == 302
    schedule.refresh_from_db()
    assert schedule.name == "Morning briefing" and schedule.next_run_at == due
    data["send_time"] = "23:59"
    editor.post(reverse("admin:mailer_schedule_change", args=[schedule.pk]), data)
    schedule.refresh_from_db()
    assert schedule.next_run_at > timezone.now()


def test_retry_failed_sends_again_to_the_failed_only(editor):
    digest = edition(status=S.SENT, started_at=timezone.now(), finished_at=timezone.now(), fanout_done=True)
    Delivery.objects.create(
        digest=digest, subscriber=SubscriberFactory(), status=Delivery.Status.SENT, sent_at=timezone.now()
    )
    failed = Delivery.objects.create(
        digest=digest, subscriber=SubscriberFactory(), status=Delivery.Status.FAILED, error="mailbox full"
    )
    response = editor.post(url("retry_failed", digest), follow=True)
    assert "Sending again to 1 failed recipients." in response.content.decode()
    assert Digest.objects.get(pk=digest.pk).status == S.SENDING
    assert Delivery.objects.get(pk=failed.pk).status == Delivery.Status.PENDING
    # Nothing failed any more: refused with a message.
    assert editor.post(url("retry_failed", digest)).status_code == 409
