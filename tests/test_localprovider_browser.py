"""The local inbox in a real browser (headless Chromium): an email's HTML is shown, its scripts
never run, and its links open in a normal tab."""

import os
import shutil

import pytest
from anymail.message import AnymailMessage

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture
def browser_page():
    executable = next(
        (
            path
            for path in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium"))
            if path and os.access(path, os.X_OK)
        ),
        None,
    )
    if executable is None:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required (REQUIRE_BROWSER=1) but was not found")
        pytest.skip("Chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.set_default_timeout(15_000)
        yield page
        browser.close()


def test_an_email_is_shown_but_its_scripts_never_run(local_provider, browser_page):
    message = AnymailMessage(
        subject="<b>Today</b> in Riverside",
        body="The text part",
        from_email="newsletter@example.com",
        to=["ann@example.org"],
    )
    message.attach_alternative(
        "<h1>Market reopens</h1>"
        "<script>parent.document.title = 'pwned'; document.body.append('script ran')</script>"
        "<img src=x onerror=\"document.body.append('handler ran')\">"
        '<a href="https://news.example.com/unsubscribe/t/">Unsubscribe</a>',
        "text/html",
    )
    message.send()
    page = browser_page
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page.goto(local_provider.url + "/")
    page.get_by_role("link", name="<b>Today</b> in Riverside").click()

    email = page.frame_locator("iframe[title='HTML part']")
    assert email.get_by_role("heading", name="Market reopens").is_visible()
    assert email.get_by_role("link", name="Unsubscribe").get_attribute("href") == (
        "https://news.example.com/unsubscribe/t/"
    )
    body_text = email.locator("body").inner_text()
    assert "script ran" not in body_text and "handler ran" not in body_text
    assert page.title() == "<b>Today</b> in Riverside"
    assert page.get_by_text("The text part").is_visible()
    assert dialogs == []
