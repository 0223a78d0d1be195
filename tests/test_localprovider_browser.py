"""The local inbox in a real browser (headless Chromium): an email's HTML is shown, its scripts
never run, and its links open in a normal tab."""

import pytest
from anymail.message import AnymailMessage

pytestmark = pytest.mark.browser


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
