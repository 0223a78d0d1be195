"""The figures of the editors' dashboard (the admin's front page): subscribers over time, the
last editions and how they did, what is scheduled next, and the state of the send queue.

Every figure is a grouped query over an indexed window or one edition's ledger (the ledger's
figures come from ``mailer.selectors.edition_figures``, as the edition's own page shows them),
and the whole dashboard is cached for ``CACHE_SECONDS`` so that a busy admin never repeats the
work. Redis being away shows as such on the dashboard instead of breaking the page.
"""

import contextlib
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from config import heartbeat
from mailer.models import Delivery, Digest, Schedule
from mailer.selectors import edition_figures
from subscribers.models import Subscriber

CACHE_KEY = "dashboard:figures"
# The broker's queues (worker/celery.py), as the dashboard names what waits in each.
QUEUES = (("bulk", "Edition batches"), ("celery", "Sign-ups and other tasks"))
CACHE_SECONDS = 60
DAYS = 30
RECENT_EDITIONS = 6
UPCOMING = 6

# The series of the chart: (key, label, colour). Colours keep contrast on the admin's white.
SERIES = (
    ("signups", "Sign-ups", "#2563eb"),
    ("confirmations", "Confirmations", "#059669"),
    ("unsubscribes", "Unsubscribes", "#d97706"),
    ("bounces", "Bounces", "#dc2626"),
)


def _zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.PUBLICATION_TIME_ZONE)


def _per_day(queryset, field: str, since: datetime, zone) -> dict[date, int]:
    rows = (
        queryset.filter(**{f"{field}__gte": since})
        .annotate(day=TruncDate(field, tzinfo=zone))
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    return dict(rows)


def subscriber_timeline(*, days: int = DAYS, today: date | None = None) -> list[dict[str, Any]]:
    """One row per day of the last ``days`` days (the publisher's days, oldest first): sign-ups,
    confirmations and unsubscribes by the subscribers' own dates, bounces by the provider's
    bounce events on deliveries. Four grouped queries, whatever the list's size."""
    zone = _zone()
    today = today or timezone.now().astimezone(zone).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=zone)
    counts = {
        "signups": _per_day(Subscriber.objects, "created_at", since, zone),
        "confirmations": _per_day(Subscriber.objects, "confirmed_at", since, zone),
        "unsubscribes": _per_day(Subscriber.objects, "unsubscribed_at", since, zone),
        "bounces": _per_day(Delivery.objects, "bounced_at", since, zone),
    }
    return [
        {"day": day, **{key: counts[key].get(day, 0) for key in counts}}
        for day in (first + timedelta(days=n) for n in range(days))
    ]


def _admin_url(model: str, pk: int) -> str:
    try:
        return reverse(f"admin:mailer_{model}_change", args=[pk])
    except NoReverseMatch:  # a screen not registered in this admin
        return ""


def _rate(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def recent_editions(*, limit: int = RECENT_EDITIONS) -> list[dict[str, Any]]:
    """The last editions that started sending, newest first, with their ledger figures and
    rates: delivered of sent, opened and clicked of delivered (of sent while the provider has
    reported no deliveries), unsubscribes."""
    started = [Digest.Status.SENDING, Digest.Status.PAUSED, Digest.Status.SENT, Digest.Status.FAILED]
    editions = []
    for digest in Digest.objects.filter(status__in=started).order_by("-started_at", "-id")[:limit]:
        figures = edition_figures(digest.pk)
        base = figures["delivered"] or figures["sent"]
        editions.append(
            {
                "id": digest.pk,
                "url": _admin_url("digest", digest.pk),
                "subject": digest.subject,
                "status": digest.get_status_display(),
                "started_at": figures["started_at"],
                "figures": figures,
                "delivered_rate": _rate(figures["delivered"], figures["sent"]),
                "open_rate": _rate(figures["opened"], base),
                "click_rate": _rate(figures["clicked"], base),
                "unsubscribe_rate": _rate(figures["unsubscribed"], base),
            }
        )
    return editions


def upcoming_editions(*, limit: int = UPCOMING) -> list[dict[str, Any]]:
    """What goes out next: scheduled one-off editions and the next run of each active schedule,
    soonest first."""
    items = [
        {"when": d.scheduled_for, "what": d.subject, "kind": "Edition", "url": _admin_url("digest", d.pk)}
        for d in Digest.objects.filter(status=Digest.Status.SCHEDULED, scheduled_for__isnull=False).order_by(
            "scheduled_for"
        )[:limit]
    ]
    items += [
        {
            "when": s.next_run_at,
            "what": s.name,
            "kind": f"{s.get_frequency_display()} schedule",
            "url": _admin_url("schedule", s.pk),
        }
        for s in Schedule.objects.filter(is_active=True, next_run_at__isnull=False).order_by("next_run_at")[
            :limit
        ]
    ]
    return sorted(items, key=lambda item: item["when"])[:limit]


# Kombu's Redis transport keeps a queue as a list per priority step (the plain name for the
# default step, "<name>\x06\x16<step>" for the others) and unacknowledged tasks in one hash.
_PRIORITY_SUFFIXES = [""] + [f"\x06\x16{step}" for step in range(1, 10)]


def _broker_queue_lengths(conn: redis.Redis, queues: list[str]) -> tuple[dict[str, int], int]:
    """Tasks waiting in each queue, and tasks taken by a worker (any queue), in one round trip."""
    pipe = conn.pipeline(transaction=False)
    for queue in queues:
        for suffix in _PRIORITY_SUFFIXES:
            pipe.llen(queue + suffix)
    pipe.hlen("unacked")
    *lengths, unacked = pipe.execute()
    steps = len(_PRIORITY_SUFFIXES)
    return {queue: sum(lengths[n * steps : (n + 1) * steps]) for n, queue in enumerate(queues)}, unacked


def queue_state() -> dict[str, Any]:
    """The send queue now: tasks waiting (in all, and per queue: ``queues``), tasks taken by a
    worker and not yet done, live workers, and each edition being sent with its progress. Never
    raises for Redis: ``error`` says why the broker figures are missing."""
    sending = []
    for digest in Digest.objects.filter(status__in=[Digest.Status.SENDING, Digest.Status.PAUSED]).order_by(
        "started_at"
    ):
        figures = edition_figures(digest.pk)
        done = figures["sent"] + figures["failed"] + figures["skipped"]
        sending.append(
            {
                "id": digest.pk,
                "url": _admin_url("digest", digest.pk),
                "subject": digest.subject,
                "status": digest.get_status_display(),
                "done": done,
                "total": figures["total"],
                "percent": round(100.0 * done / figures["total"], 1) if figures["total"] else 0.0,
                "rate_per_second": figures["rate_per_second"],
            }
        )
    state: dict[str, Any] = {
        "sending": sending,
        "waiting": None,
        "queues": [],
        "running": None,
        "workers": {},
        "error": "",
    }
    try:
        conn = heartbeat.client(settings.CELERY_BROKER_URL)
        waiting, state["running"] = _broker_queue_lengths(conn, [name for name, _ in QUEUES])
        state["waiting"] = sum(waiting.values())
        state["queues"] = [{"name": name, "label": label, "waiting": waiting[name]} for name, label in QUEUES]
        state["workers"] = heartbeat.live_workers(conn=heartbeat.client())
    except redis.RedisError as exc:
        state["error"] = f"Redis did not answer: {exc}"[:200]
    return state


@dataclass(frozen=True)
class Chart:
    """An SVG line chart of the timeline, laid out here so the template only draws it."""

    width: int
    height: int
    plot: dict[str, float]
    series: list[dict[str, Any]]
    y_ticks: list[dict[str, Any]]
    x_labels: list[dict[str, Any]]


def _nice_ceiling(value: int) -> int:
    if value <= 4:
        return 4
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 2.5, 5, 10):
        ceiling = int(step * magnitude)
        if ceiling >= value and ceiling % 4 == 0:
            return ceiling
    return -(-value // 4) * 4


def chart(timeline: list[dict[str, Any]], *, width: int = 720, height: int = 220) -> Chart:
    left, right, top, bottom = 44.0, 12.0, 12.0, 28.0
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([row[key] for row in timeline for key, _, _ in SERIES] + [0])
    ceiling = _nice_ceiling(peak)
    steps = max(len(timeline) - 1, 1)

    def x(i: int) -> float:
        return round(left + plot_w * i / steps, 1)

    def y(v: int) -> float:
        return round(top + plot_h * (1 - v / ceiling), 1)

    series = []
    for key, label, colour in SERIES:
        points = [(x(i), y(row[key]), row["day"], row[key]) for i, row in enumerate(timeline)]
        series.append(
            {
                "key": key,
                "label": label,
                "colour": colour,
                "total": sum(row[key] for row in timeline),
                "points": " ".join(f"{px},{py}" for px, py, _, _ in points),
                "dots": [{"x": px, "y": py, "day": day, "value": v} for px, py, day, v in points],
            }
        )
    y_ticks = [{"y": y(ceiling * n // 4), "value": ceiling * n // 4} for n in range(5)]
    label_at = sorted({0, len(timeline) // 2, len(timeline) - 1}) if timeline else []
    x_labels = [{"x": x(i), "day": timeline[i]["day"]} for i in label_at]
    return Chart(
        width=width,
        height=height,
        plot={"left": left, "top": top, "right": width - right, "bottom": height - bottom},
        series=series,
        y_ticks=y_ticks,
        x_labels=x_labels,
    )


def dashboard(*, use_cache: bool = True) -> dict[str, Any]:
    """Everything the dashboard shows; cached for ``CACHE_SECONDS`` (the queue state is never
    cached: it is what an editor watching a send wants to see move)."""
    figures = None
    if use_cache:
        try:
            figures = cache.get(CACHE_KEY)
        except redis.RedisError:
            use_cache = False  # the queue state below says Redis is away
    if figures is None:
        timeline = subscriber_timeline()
        figures = {
            "timeline": timeline,
            "chart": chart(timeline),
            "recent": recent_editions(),
            "upcoming": upcoming_editions(),
            "totals": dict(
                Subscriber.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
            ),
            "computed_at": timezone.now(),
        }
        if use_cache:
            with contextlib.suppress(redis.RedisError):
                cache.set(CACHE_KEY, figures, CACHE_SECONDS)
    return {**figures, "queue": queue_state()}
