"""An editor's whole working day in a real browser (headless Chromium through Playwright)
against the live server, the real worker and the local provider.

A staff editor who is not a superuser (only the permissions a newsroom would give) creates an
edition from the articles published since the previous one, previews it for readers of one
topic (HTML and text), sends a test to herself, sends it now and watches it reach "Sent" with
the right counts. Then the readers' side: each got only the articles of their topics, under
the edition's subject, with a working unsubscribe link."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone

from mailer.models import Delivery, Digest
from subscribers.models import Frequency, Subscriber
from tests.factories import ArticleFactory, SubscriberFactory, TopicFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def newsroom_editor(username: str, email: str, password: str):
    """A staff account with the permissions an editor needs, not a superuser."""
    user = get_user_model().objects.create_user(
        username, email, password, first_name="Dana", last_name="Desk", is_staff=True
    )
    codenames = [
        f"{action}_{model}"
        for model in ("digest", "digestarticle", "article", "schedule")
        for action in ("add", "change", "view")
    ] + ["view_delivery", "view_subscriber", "view_topic"]
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def link(text: str, path: str) -> str:
    """The whole link, query included (``?d=`` credits the edition with the unsubscribe)."""
    return re.search(rf"https?://\S+/{path}/\S+", text).group(0)


def headlines(text: str) -> list[str]:
    """The numbered headlines of a digest's plain-text part."""
    return re.findall(r"^\d+\. (.+)$", text, re.M)


def test_an_editor_builds_previews_tests_and_sends_an_edition_that_readers_receive(
    live_server, celery_worker, local_provider, settings, browser_page
):
    settings.SITE_URL = live_server.url
    news = TopicFactory(slug="news", name="News")
    sport = TopicFactory(slug="sport", name="Sport")
    earlier = timezone.now() - timedelta(hours=3)
    council = ArticleFactory(title="Council approves the riverside park", published_at=earlier)
    council.topics.set([news])
    derby = ArticleFactory(title="Riverside United win the derby", published_at=earlier + timedelta(hours=1))
    derby.topics.set([sport])
    fan = SubscriberFactory(email="fan@example.org", name="Fran", frequency=Frequency.DAILY)
    fan.set_topics([sport])
    everything = SubscriberFactory(email="all@example.org", frequency=Frequency.DAILY)
    weekly = SubscriberFactory(email="weekly@example.org", frequency=Frequency.WEEKLY)
    newsroom_editor("dana", "dana@example.org", "pw-dana-123")
    page = browser_page

    page.goto(live_server.url + "/admin/login/")
    page.fill("#id_username", "dana")
    page.fill("#id_password", "pw-dana-123")
    page.click("input[type=submit]")

    # A new edition: the articles published since the previous one are put in, newest first.
    page.goto(live_server.url + "/admin/mailer/digest/add/")
    page.get_by_label("Subject").fill("Riverside today")
    page.get_by_label("Intro").fill("Good morning from the newsroom.")
    page.get_by_label("Frequency").select_option("daily")
    page.get_by_role("button", name="Save and continue editing").click()
    page.get_by_text("2 articles published since the previous edition were added.").wait_for()
    digest = Digest.objects.get(subject="Riverside today")
    titles = digest.digestarticle_set.order_by("position").values_list("article__title", flat=True)
    assert list(titles) == [derby.title, council.title]

    # Preview as a reader of Sport only: the HTML in its frame and the text beside it.
    page.get_by_role("link", name="Preview").click()
    page.get_by_label("Sport").check()
    page.get_by_role("button", name="Show").click()
    page.get_by_text("1 article").first.wait_for()
    frame = page.frame_locator("iframe.preview-frame")
    frame.get_by_role("link", name=derby.title).first.wait_for()
    assert council.title not in frame.locator("body").inner_text()
    text = page.locator(".preview-text").inner_text()
    # The text part wraps between words, as a mail client shows it, not mid-word.
    assert page.locator(".preview-text").evaluate("e => getComputedStyle(e).wordBreak") != "break-all"
    assert headlines(text) == [derby.title] and "Hello Dana Desk," in text
    page.get_by_role("link", name="Back to the edition").click()

    # A test to herself (her address is filled in), as a reader of Sport.
    assert page.get_by_label("Send a test to").input_value() == "dana@example.org"
    page.get_by_label("as a reader of").select_option(label="Sport")
    page.get_by_role("button", name="Send test").click()
    page.get_by_text("A test was sent to dana@example.org.").wait_for()
    [proof] = local_provider.wait_for(1)
    assert proof["recipient"] == "dana@example.org" and proof["subject"] == "[TEST] Riverside today"
    assert headlines(proof["text"]) == [derby.title]

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Send now").click()
    page.get_by_text("Sending has started.").wait_for()
    page.locator("#edition-status", has_text="Sent").wait_for(timeout=60_000)
    figures = " ".join(page.locator("#edition-figures").inner_text().split())
    assert "2 sent of 2 · 0 failed" in figures
    assert Digest.objects.get(pk=digest.pk).status == Digest.Status.SENT
    assert Delivery.objects.filter(digest=digest).count() == 2  # the weekly reader is not in it

    # The readers' side: subject, their topics' articles, one working unsubscribe link each.
    messages = local_provider.wait_for(3)
    assert sorted(m["recipient"] for m in messages) == [
        "all@example.org",
        "dana@example.org",
        "fan@example.org",
    ]
    [to_fan] = local_provider.messages(to="fan@example.org")
    [to_all] = local_provider.messages(to="all@example.org")
    assert to_fan["subject"] == to_all["subject"] == "Riverside today"
    assert headlines(to_fan["text"]) == [derby.title]
    assert headlines(to_all["text"]) == [derby.title, council.title]
    assert "Hello Fran," in to_fan["text"] and "Good morning from the newsroom." in to_fan["text"]
    assert to_fan["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert not local_provider.messages(to="weekly@example.org")

    page.goto(link(to_fan["text"], "unsubscribe"))
    assert Subscriber.objects.get(pk=fan.pk).status == Subscriber.Status.ACTIVE  # GET changed nothing
    page.get_by_role("button", name="Unsubscribe").click()
    page.get_by_role("heading", name="You are unsubscribed").wait_for()
    assert Subscriber.objects.get(pk=fan.pk).status == Subscriber.Status.UNSUBSCRIBED
    assert Subscriber.objects.get(pk=everything.pk).status == Subscriber.Status.ACTIVE
    assert Subscriber.objects.get(pk=weekly.pk).status == Subscriber.Status.ACTIVE
    # The edition is credited with the unsubscribe.
    page.goto(f"{live_server.url}/admin/mailer/digest/{digest.pk}/change/")
    assert page.locator("td[data-figure=unsubscribed]").inner_text() == "1"

    # The front page's last editions: figures' headings on one line, the table inside its box.
    page.goto(live_server.url + "/admin/")
    editions = page.locator("#recent-editions")
    editions.locator("th", has_text="Delivered").wait_for()  # figures are cached for a minute
    heading = editions.locator("th", has_text="Delivered").bounding_box()
    title = editions.locator("th", has_text="Edition").bounding_box()
    assert heading["height"] <= title["height"] * 1.2  # it broke letter by letter before
    assert editions.evaluate("e => e.querySelector('table').scrollWidth <= e.clientWidth")
