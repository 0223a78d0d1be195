"""An editor in a real browser (headless Chromium through Playwright) against the live server,
with the real worker and the local provider: preview an edition, send a test, send it, and
watch the page follow the send by itself until it is sent."""

import pytest
from django.contrib.auth import get_user_model

from mailer.models import Digest, DigestArticle
from subscribers.models import Frequency
from tests.factories import ArticleFactory, DigestFactory, SubscriberFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_an_editor_previews_tests_sends_and_watches_an_edition(
    live_server, celery_worker, local_provider, settings, browser_page
):
    settings.SITE_URL = live_server.url
    # Slow the send down (2 recipients a call, 4 a second) so the page sees it running.
    settings.PROVIDER_BATCH_SIZE = 2
    settings.PROVIDER_RATE_LIMIT = 4
    get_user_model().objects.create_superuser("erin", "erin@example.org", "pw-erin-123", first_name="Erin")
    digest = DigestFactory(subject="Tuesday briefing", frequency=Frequency.DAILY)
    DigestArticle.objects.create(
        digest=digest, article=ArticleFactory(title="Bridge reopens", excerpt="<p>At last.</p>"), position=0
    )
    readers = [SubscriberFactory(frequency=Frequency.DAILY) for _ in range(20)]
    page = browser_page

    page.goto(live_server.url + "/admin/login/")
    page.fill("#id_username", "erin")
    page.fill("#id_password", "pw-erin-123")
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/mailer/digest/{digest.pk}/change/")

    page.get_by_role("link", name="Preview").click()
    frame = page.frame_locator("iframe.preview-frame")
    frame.get_by_role("link", name="Bridge reopens").wait_for()
    assert "Hello Erin," in frame.locator("body").inner_text()
    page.get_by_role("link", name="Back to the edition").click()

    page.get_by_role("button", name="Send test").click()
    page.get_by_text("A test was sent to erin@example.org.").wait_for()
    [proof] = local_provider.wait_for(1)
    assert proof["subject"] == "[TEST] Tuesday briefing"

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Send now").click()
    page.get_by_text("Sending has started.").wait_for()
    assert page.locator("#edition-status").inner_text() == "Sending"  # 20 at 4 a second: ~5 s
    # No reload from the test: the page follows the send and shows it finished.
    page.locator("#edition-status", has_text="Sent").wait_for(timeout=60_000)
    figures = page.locator("#edition-figures").inner_text()
    assert f"{len(readers)} sent of {len(readers)}" in " ".join(figures.split())
    assert Digest.objects.get(pk=digest.pk).status == Digest.Status.SENT
    assert len(local_provider.wait_for(1 + len(readers))) == 1 + len(readers)
