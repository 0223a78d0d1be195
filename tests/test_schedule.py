"""Schedule maths: next runs in the schedule's time zone, across DST changes."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.models import Schedule
from mailer.schedules import InvalidSchedule, local_time_exists, next_run_after
from subscribers.models import Frequency

LONDON = ZoneInfo("Europe/London")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def daily(at: time, zone: str = "Europe/London") -> Schedule:
    return Schedule(name="Daily", frequency=Frequency.DAILY, send_time=at, time_zone=zone)


def runs(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    out = []
    for _ in range(count):
        after = next_run_after(schedule, after)
        out.append(after)
    return out


def test_daily_0700_london_stays_0700_local_across_spring_forward():
    # Clocks go forward on Sunday 29 March 2026 at 01:00 UTC.
    got = runs(daily(time(7, 0)), utc(2026, 3, 27, 7, 0), 3)
    assert got == [utc(2026, 3, 28, 7, 0), utc(2026, 3, 29, 6, 0), utc(2026, 3, 30, 6, 0)]
    assert {g.astimezone(LONDON).time() for g in got} == {time(7, 0)}


def test_daily_0700_london_stays_0700_local_across_fall_back():
    # Clocks go back on Sunday 25 October 2026 at 01:00 UTC.
    got = runs(daily(time(7, 0)), utc(2026, 10, 23, 6, 0), 3)
    assert got == [utc(2026, 10, 24, 6, 0), utc(2026, 10, 25, 7, 0), utc(2026, 10, 26, 7, 0)]
    assert {g.astimezone(LONDON).time() for g in got} == {time(7, 0)}


def test_a_time_that_does_not_exist_runs_just_after_the_gap_the_same_day():
    schedule = daily(time(1, 30))
    assert not local_time_exists(datetime(2026, 3, 29).date(), time(1, 30), LONDON)
    got = runs(schedule, utc(2026, 3, 28, 1, 30), 2)
    # 01:30 GMT is 02:30 BST on the wall clock: that day still gets its edition, once.
    assert got == [utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]
    assert got[0].astimezone(LONDON).time() == time(2, 30)


def test_a_time_that_happens_twice_runs_once_at_the_first():
    got = runs(daily(time(1, 30)), utc(2026, 10, 24, 0, 30), 2)
    assert got == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    assert got[0].astimezone(LONDON).utcoffset() == timedelta(hours=1)  # BST, the first 01:30


def test_weekly_on_a_weekday_in_another_zone():
    schedule = Schedule(
        name="Weekly",
        frequency=Frequency.WEEKLY,
        weekday=Schedule.Weekday.MONDAY,
        send_time=time(8, 15),
        time_zone="America/New_York",
    )
    # Wednesday 4 March 2026; US clocks go forward on Sunday 8 March.
    got = runs(schedule, utc(2026, 3, 4, 12, 0), 2)
    assert got == [utc(2026, 3, 9, 12, 15), utc(2026, 3, 16, 12, 15)]
    assert all(g.astimezone(ZoneInfo("America/New_York")).weekday() == 0 for g in got)


def test_the_run_moment_itself_is_not_the_next_run():
    schedule = daily(time(7, 0))
    assert next_run_after(schedule, utc(2026, 1, 5, 7, 0)) == utc(2026, 1, 6, 7, 0)
    assert next_run_after(schedule, utc(2026, 1, 5, 6, 59)) == utc(2026, 1, 5, 7, 0)


def test_bad_schedules_are_refused():
    with pytest.raises(InvalidSchedule):
        next_run_after(daily(time(7, 0), zone="Mars/Olympus"), utc(2026, 1, 1))
    weekly = Schedule(name="W", frequency=Frequency.WEEKLY, weekday=None, send_time=time(7, 0))
    with pytest.raises(InvalidSchedule):
        next_run_after(weekly, utc(2026, 1, 1))


def test_zone_defaults_to_the_publication_zone(settings):
    settings.PUBLICATION_TIME_ZONE = "Asia/Tokyo"
    schedule = Schedule(name="D", frequency=Frequency.DAILY, send_time=time(7, 0))
    assert schedule.time_zone == "Asia/Tokyo"
    assert next_run_after(schedule, utc(2026, 6, 1, 0, 0)) == utc(2026, 6, 1, 22, 0)


@settings(max_examples=150, deadline=None)
@given(
    after=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    ),
    at=st.times(),
    zone=st.sampled_from(["Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]),
    weekday=st.one_of(st.none(), st.integers(0, 6)),
)
def test_next_run_properties(after, at, zone, weekday):
    schedule = Schedule(
        name="P",
        frequency=Frequency.DAILY if weekday is None else Frequency.WEEKLY,
        weekday=weekday,
        send_time=at,
        time_zone=zone,
    )
    tz = ZoneInfo(zone)
    got = next_run_after(schedule, after)
    assert got > after
    assert got - after <= timedelta(days=8 if weekday is not None else 2)
    local = got.astimezone(tz)
    if weekday is not None:
        assert local.date().weekday() == weekday or not local_time_exists(local.date(), at, tz)
    if local_time_exists(local.date(), at, tz):
        assert local.time().replace(tzinfo=None) == at
    # Nothing is skipped: the run before this one is not after ``after``.
    assert next_run_after(schedule, got - timedelta(microseconds=1)) == got
