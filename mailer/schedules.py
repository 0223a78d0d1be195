"""Recurring editions: when a schedule runs next, in its own time zone.

A schedule says "daily at 07:00" or "weekly on Monday at 07:00" in a time zone; the moment is
stored in UTC (``Schedule.next_run_at``) and recomputed from the local wall clock after every
run, so a 07:00 Europe/London edition stays at 07:00 local on both sides of a DST change.

Local times a DST change makes odd are resolved like this (and tested):
- a time that does not exist (clocks go forward through it, e.g. 01:30 on the last Sunday of
  March in London) runs at the same moment the wall clock would have shown it had it not
  jumped: 01:30 GMT, which the clock shows as 02:30 BST; never skipped, never a day late;
- a time that happens twice (clocks go back, e.g. 01:30 on the last Sunday of October) runs at
  the first occurrence, once.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings

from mailer.models import Schedule
from subscribers.models import Frequency


class InvalidSchedule(ValueError):
    """A schedule that cannot run: unknown time zone, or weekly without a weekday."""


def zone(name: str | None) -> ZoneInfo:
    """The ZoneInfo for ``name`` (the publication's zone when empty). Raises InvalidSchedule."""
    try:
        return ZoneInfo(name or settings.PUBLICATION_TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSchedule(f"Unknown time zone {name!r}.") from exc


def local_moment(day: date, at: time, tz: ZoneInfo) -> datetime:
    """``day`` at wall-clock ``at`` in ``tz`` as an aware UTC datetime (DST rules above)."""
    # fold=0: of two occurrences the first; of a time in a gap, the offset before the gap,
    # which lands the moment just after the gap at the same distance from its start.
    return datetime.combine(day, at.replace(tzinfo=None), tzinfo=tz).astimezone(UTC)


def local_time_exists(day: date, at: time, tz: ZoneInfo) -> bool:
    naive = datetime.combine(day, at.replace(tzinfo=None))
    return local_moment(day, at, tz).astimezone(tz).replace(tzinfo=None) == naive


def next_run_after(schedule: Schedule, after: datetime) -> datetime:
    """The first moment strictly after ``after`` at which ``schedule`` runs (aware, UTC)."""
    tz = zone(schedule.time_zone)
    if schedule.frequency == Frequency.WEEKLY and schedule.weekday is None:
        raise InvalidSchedule("A weekly schedule needs a weekday.")
    day = after.astimezone(tz).date()
    for _ in range(9):  # a daily run is at most 2 days on, a weekly one at most 8
        if schedule.frequency != Frequency.WEEKLY or day.weekday() == schedule.weekday:
            moment = local_moment(day, schedule.send_time, tz)
            if moment > after:
                return moment
        day += timedelta(days=1)
    raise AssertionError("unreachable: a run is found within 8 days")  # pragma: no cover


def refresh_next_run(schedule: Schedule, *, now: datetime) -> None:
    """Set ``next_run_at`` from the current settings (an editor changed the time, zone or
    weekday, or switched the schedule on); not saved. Inactive schedules have none."""
    schedule.next_run_at = next_run_after(schedule, now) if schedule.is_active else None


def window_start(schedule_frequency: str, until: datetime) -> datetime:
    """How far back an edition looks when it has no previous edition to start from."""
    return until - (timedelta(days=7) if schedule_frequency == Frequency.WEEKLY else timedelta(days=1))


def edition_subject(schedule: Schedule, *, when: datetime, first_title: str) -> str:
    """The subject from the schedule's template; unknown placeholders are left as written."""
    local = when.astimezone(zone(schedule.time_zone))
    values = {
        "publication": settings.PUBLICATION_NAME,
        "date": f"{local:%A} {local.day} {local:%B %Y}",
        "first_title": first_title,
    }
    subject = schedule.subject_template
    for key, value in values.items():
        subject = subject.replace("{" + key + "}", value)
    return " ".join(subject.split())[:200] or settings.PUBLICATION_NAME
