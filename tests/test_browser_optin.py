"""A reader in a real browser (headless Chromium through Playwright) against the live server,
with the real worker and the local provider: sign up, confirm from the emailed link, open the
preferences from the welcome email, change topics, unsubscribe."""

import re

import pytest

from subscribers.models import Subscriber
from tests.factories import TopicFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def link(text: str, path: str) -> str:
    return re.search(rf"https?://\S+/{path}/\S+/", text).group(0)


def test_a_reader_signs_up_confirms_changes_topics_and_unsubscribes(
    live_server, celery_worker, local_provider, settings, browser_page
):
    settings.SITE_URL = live_server.url
    news = TopicFactory(slug="news", name="News")
    sport = TopicFactory(slug="sport", name="Sport")
    page = browser_page

    page.goto(live_server.url + "/")
    page.get_by_label("Email address").fill("Reader@Example.org")
    page.get_by_label("News").check()
    page.get_by_label("Weekly digest").check()
    assert not page.locator("input[name=website]").is_visible()  # the honeypot is hidden from people
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()

    [confirmation] = local_provider.wait_for(1)
    page.goto(link(confirmation["text"], "confirm"))
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING
    page.get_by_role("button", name="Confirm my subscription").click()
    page.get_by_role("heading", name="You are subscribed").wait_for()

    local_provider.wait_for(2)
    [welcome] = local_provider.messages(to="reader@example.org", subject="Welcome")
    page.goto(link(welcome["text"], "preferences"))
    assert page.get_by_label("News").is_checked() and page.get_by_label("Weekly digest").is_checked()
    page.get_by_label("News").uncheck()
    page.get_by_label("Sport").check()
    page.get_by_role("button", name="Save my preferences").click()
    page.get_by_text("Your preferences are saved").wait_for()
    subscriber = Subscriber.objects.get()
    assert list(subscriber.topics.all()) == [sport] and news not in subscriber.topics.all()
    assert subscriber.segment_key == str(sport.pk)

    page.goto(link(welcome["text"], "unsubscribe"))
    page.get_by_role("button", name="Unsubscribe").click()
    page.get_by_role("heading", name="You are unsubscribed").wait_for()
    assert Subscriber.objects.get().status == Subscriber.Status.UNSUBSCRIBED
