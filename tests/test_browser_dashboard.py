"""An editor opens the admin's front page in a real browser (headless Chromium) and sees the
dashboard's chart drawn: four lines with a visible extent, the legend and the figures."""

import pytest
from django.utils import timezone

from tests.factories import SubscriberFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_dashboard_chart_is_drawn(live_server, browser_page, django_user_model):
    page = browser_page
    django_user_model.objects.create_superuser("editor", "editor@example.org", "a long test password")
    now = timezone.now()
    for days_ago, count in ((0, 3), (2, 5), (9, 1)):
        SubscriberFactory.create_batch(count, created_at=now - timezone.timedelta(days=days_ago))

    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "editor")
    page.fill("#id_password", "a long test password")
    page.click("input[type=submit]")
    page.wait_for_selector("#subscriber-chart svg")

    chart = page.locator("#subscriber-chart svg")
    box = chart.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 80
    lines = page.locator("#subscriber-chart polyline")
    assert lines.count() == 4
    signups = page.locator('#subscriber-chart g[data-series="signups"] polyline')
    # The browser laid the line out: it spans most of the plot's width and rises off the axis.
    extent = signups.evaluate("line => { const b = line.getBBox(); return [b.width, b.height]; }")
    assert extent[0] > 300 and extent[1] > 20
    assert page.locator('#subscriber-chart g[data-series="signups"] circle').count() == 3
    legend = page.locator('#subscriber-chart .legend li[data-series="signups"]').inner_text()
    assert "Sign-ups" in legend and "9" in legend
    assert page.locator("#queue-state").is_visible() and page.locator("#recent-editions").is_visible()
