"""The editors' dashboard: its figures against known data, and the admin front page that shows them."""

import zoneinfo
from datetime import date, datetime, time, timedelta

import pytest
from django.utils import timezone

from config import heartbeat
from mailer import dashboard
from mailer.models import Delivery, Digest, Schedule
from subscribers.models import Subscriber
from tests.factories import DigestFactory, SubscriberFactory

LONDON = zoneinfo.ZoneInfo("Europe/London")
TODAY = date(2026, 3, 20)


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=LONDON)


@pytest.fixture
def publisher_zone(settings):
    settings.PUBLICATION_TIME_ZONE = "Europe/London"


def test_the_timeline_counts_each_event_on_the_publishers_day(db, publisher_zone):
    d1, d2 = TODAY - timedelta(days=2), TODAY - timedelta(days=1)
    SubscriberFactory(created_at=at(d1), confirmed_at=at(d1, 13))
    SubscriberFactory(created_at=at(d1), confirmed_at=at(d2))
    # 23:30 in London on d2 is already the next UTC day in summer and the same day in winter:
    # either way it is d2 for the publisher.
    SubscriberFactory(
        created_at=at(d2, 23).replace(minute=30), status=Subscriber.Status.PENDING, confirmed_at=None
    )
    gone = SubscriberFactory(
        created_at=at(TODAY - timedelta(days=40)), confirmed_at=at(TODAY - timedelta(days=40))
    )
    gone.unsubscribed_at = at(TODAY)
    gone.status = Subscriber.Status.UNSUBSCRIBED
    gone.save()
    digest = DigestFactory(status=Digest.Status.SENT)
    Delivery.objects.create(digest=digest, subscriber=gone, status=Delivery.Status.SENT, bounced_at=at(d2))

    timeline = dashboard.subscriber_timeline(days=5, today=TODAY)
    assert [row["day"] for row in timeline] == [TODAY - timedelta(days=n) for n in range(4, -1, -1)]
    by_day = {row["day"]: row for row in timeline}
    assert by_day[d1] == {"day": d1, "signups": 2, "confirmations": 1, "unsubscribes": 0, "bounces": 0}
    assert by_day[d2] == {"day": d2, "signups": 1, "confirmations": 1, "unsubscribes": 0, "bounces": 1}
    assert by_day[TODAY]["unsubscribes"] == 1 and by_day[TODAY]["signups"] == 0
    # The 40-day-old sign-up is outside the window.
    assert sum(row["signups"] for row in timeline) == 3


def _edition(subject: str, *, started: datetime, outcomes: list[dict]) -> Digest:
    digest = DigestFactory(
        subject=subject, status=Digest.Status.SENT, started_at=started, finished_at=started
    )
    Delivery.objects.bulk_create(
        Delivery(digest=digest, subscriber=SubscriberFactory(), **outcome) for outcome in outcomes
    )
    return digest


def test_recent_editions_show_their_figures_and_rates(db):
    now = timezone.now()
    sent = {"status": Delivery.Status.SENT, "sent_at": now}
    older = _edition(
        "Monday",
        started=now - timedelta(days=1),
        outcomes=[
            {**sent, "delivered_at": now, "opened_at": now, "clicked_at": now},
            {**sent, "delivered_at": now, "opened_at": now},
            {**sent, "delivered_at": now, "unsubscribed_at": now},
            {**sent, "delivered_at": now},
            {**sent, "bounced_at": now},
            {"status": Delivery.Status.FAILED, "error": "rejected"},
        ],
    )
    newer = _edition("Tuesday", started=now, outcomes=[sent, sent])
    DigestFactory(subject="A draft", status=Digest.Status.DRAFT)

    recent = dashboard.recent_editions()
    assert [e["subject"] for e in recent] == ["Tuesday", "Monday"]
    monday = recent[1]
    assert monday["id"] == older.pk and monday["url"] == f"/admin/mailer/digest/{older.pk}/change/"
    assert monday["figures"]["sent"] == 5 and monday["figures"]["failed"] == 1
    assert monday["delivered_rate"] == 80.0  # 4 delivered of 5 sent
    assert monday["open_rate"] == 50.0  # 2 opened of 4 delivered
    assert monday["click_rate"] == 25.0
    assert monday["unsubscribe_rate"] == 25.0 and monday["figures"]["unsubscribed"] == 1
    # No delivery events yet: rates are of what was sent, and delivered is unknown (0 %).
    assert recent[0]["id"] == newer.pk and recent[0]["open_rate"] == 0.0


def test_upcoming_lists_scheduled_editions_and_schedules_soonest_first(db):
    now = timezone.now()
    DigestFactory(
        subject="Election special", status=Digest.Status.SCHEDULED, scheduled_for=now + timedelta(hours=5)
    )
    Schedule.objects.create(name="Morning briefing", send_time=time(7), next_run_at=now + timedelta(hours=2))
    Schedule.objects.create(
        name="Retired", send_time=time(7), next_run_at=now + timedelta(hours=1), is_active=False
    )
    upcoming = dashboard.upcoming_editions()
    assert [item["what"] for item in upcoming] == ["Morning briefing", "Election special"]
    assert upcoming[0]["kind"].endswith("schedule") and upcoming[1]["kind"] == "Edition"


def test_queue_state_counts_waiting_tasks_per_queue_live_workers_and_sends_in_progress(db):
    from worker import app

    app.send_task("mailer.tasks.digests.tick")  # no worker runs: it waits in the queue
    app.send_task("mailer.tasks.delivery.send_batch", args=[0])  # and this one in "bulk"
    heartbeat.beat("celery@dashboard-test")
    digest = DigestFactory(status=Digest.Status.SENDING, started_at=timezone.now())
    Delivery.objects.bulk_create(
        [
            Delivery(digest=digest, subscriber=SubscriberFactory(), status=Delivery.Status.SENT)
            for _ in range(3)
        ]
        + [Delivery(digest=digest, subscriber=SubscriberFactory()) for _ in range(1)]
    )
    state = dashboard.queue_state()
    assert state["error"] == ""
    assert state["waiting"] == 2 and state["running"] == 0
    assert [(q["name"], q["waiting"]) for q in state["queues"]] == [("bulk", 1), ("celery", 1)]
    assert list(state["workers"]) == ["celery@dashboard-test"]
    [sending] = state["sending"]
    assert (sending["done"], sending["total"], sending["percent"]) == (3, 4, 75.0)


def test_the_chart_scales_every_series_into_the_plot(db):
    timeline = [
        {
            "day": TODAY - timedelta(days=2 - n),
            "signups": v,
            "confirmations": 0,
            "unsubscribes": 0,
            "bounces": 0,
        }
        for n, v in enumerate([0, 7, 3])
    ]
    chart = dashboard.chart(timeline, width=400, height=200)
    signups = next(s for s in chart.series if s["key"] == "signups")
    assert signups["total"] == 10
    ys = [dot["y"] for dot in signups["dots"]]
    assert ys[0] == chart.plot["bottom"]  # zero sits on the axis
    assert chart.plot["top"] <= ys[1] < ys[2] < ys[0]  # 7 is higher on the page than 3
    assert [t["value"] for t in chart.y_ticks][-1] >= 7
    xs = [dot["x"] for dot in signups["dots"]]
    assert xs[0] == chart.plot["left"] and xs[-1] == chart.plot["right"]


def test_the_admin_front_page_shows_the_dashboard(admin_client, publisher_zone):
    now = timezone.now()
    SubscriberFactory.create_batch(3, created_at=now, confirmed_at=now)
    _edition(
        "Weekly <b>round-up</b>", started=now, outcomes=[{"status": Delivery.Status.SENT, "sent_at": now}]
    )
    page = admin_client.get("/admin/").content.decode()
    assert 'id="subscriber-chart"' in page and page.count("<polyline") == 4
    assert 'data-series="signups"' in page and "Sign-ups <strong>4</strong>" in page
    assert "Weekly &lt;b&gt;round-up&lt;/b&gt;" in page and "Weekly <b>" not in page
    assert "No edition is being sent." in page and "Nothing scheduled." in page
    assert 'data-queue="bulk"' in page and 'data-queue="celery"' in page
    assert 'id="content-main"' in page  # the admin's own app list is still there


def test_the_dashboard_survives_redis_being_down(admin_client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    settings.CELERY_BROKER_URL = settings.REDIS_URL = "redis://127.0.0.1:1/0"
    figures = dashboard.dashboard()
    assert figures["queue"]["error"].startswith("Redis did not answer")
    assert len(figures["timeline"]) == dashboard.DAYS
