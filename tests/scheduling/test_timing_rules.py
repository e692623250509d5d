"""The pure rules of time (webapp.services.scheduling.timing, .recurrence, .materializer's plan): DST, windows, cron.

Fixed dates, no servers: each rule is a function of its inputs. The DST rule is RFC 5545's
(zoneinfo's fold=0): a wall time the clocks skip moves forward by the gap, one they repeat is
its first occurrence. 2026 changes: Europe/Berlin 29 March 02:00 CET → 03:00 CEST and
25 October 03:00 CEST → 02:00 CET; America/New_York 8 March 02:00 EST → 03:00 EDT and
1 November 02:00 EDT → 01:00 EST.
"""

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from webapp.services.scheduling import recurrence
from webapp.services.scheduling import timing

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def local(moment, tz):
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


# --- wall times ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tz, wall, expected_utc, shown, note",
    [
        # Spring forward: the skipped wall time moves forward by the gap.
        (BERLIN, datetime(2026, 3, 29, 2, 30), utc(2026, 3, 29, 1, 30), "2026-03-29 03:30 CEST", "skipped"),
        (NEW_YORK, datetime(2026, 3, 8, 2, 30), utc(2026, 3, 8, 7, 30), "2026-03-08 03:30 EDT", "skipped"),
        # Fall back: the repeated wall time is its first occurrence (summer time).
        (BERLIN, datetime(2026, 10, 25, 2, 30), utc(2026, 10, 25, 0, 30), "2026-10-25 02:30 CEST", "repeated"),
        (NEW_YORK, datetime(2026, 11, 1, 1, 30), utc(2026, 11, 1, 5, 30), "2026-11-01 01:30 EDT", "repeated"),
        # Ordinary times either side are untouched.
        (BERLIN, datetime(2026, 3, 29, 3, 30), utc(2026, 3, 29, 1, 30), "2026-03-29 03:30 CEST", None),
        (NEW_YORK, datetime(2026, 11, 1, 2, 30), utc(2026, 11, 1, 7, 30), "2026-11-01 02:30 EST", None),
    ],
)
def test_one_dst_rule_for_every_wall_time(tz, wall, expected_utc, shown, note):
    moment = timing.wall_to_utc(wall, tz)
    assert moment == expected_utc
    assert local(moment, tz) == shown
    assert timing.wall_time_note(wall, tz) == note


def test_unknown_zones_are_refused_and_never_reach_zoneinfo():
    for name in ("Mars/Olympus_Mons", "../../etc/passwd", "", None, "utc "):
        assert not timing.is_known_zone(name)
        with pytest.raises(timing.UnknownZone):
            timing.zone(name)
    assert timing.zone_or_utc("Mars/Olympus_Mons") is UTC


# --- windows ------------------------------------------------------------------------------------


def windows(*specs):
    return timing.windows_from([{"days": days, "start": start, "end": end} for days, start, end in specs])


WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


@pytest.mark.parametrize(
    "moment, expected",
    [
        (utc(2026, 3, 4, 10, 0), utc(2026, 3, 4, 10, 0)),  # Wednesday 11:00 CET: inside
        (utc(2026, 3, 4, 7, 0), utc(2026, 3, 4, 8, 0)),  # Wednesday 08:00: waits for 09:00
        (utc(2026, 3, 4, 16, 0), utc(2026, 3, 5, 8, 0)),  # Wednesday 17:00 (end is exclusive): Thursday 09:00
        (utc(2026, 3, 6, 17, 0), utc(2026, 3, 9, 8, 0)),  # Friday evening: over the weekend to Monday 09:00
        (utc(2026, 3, 7, 12, 0), utc(2026, 3, 9, 8, 0)),  # Saturday: Monday
    ],
)
def test_a_weekday_window_holds_the_job_over_nights_and_weekends(moment, expected):
    assert timing.next_opening(moment, windows((WEEKDAYS, "09:00", "17:00")), BERLIN) == expected


@pytest.mark.parametrize(
    "moment, expected",
    [
        (utc(2026, 3, 6, 22, 30), utc(2026, 3, 6, 22, 30)),  # Friday 23:30 CET: inside
        (utc(2026, 3, 7, 0, 30), utc(2026, 3, 7, 0, 30)),  # Saturday 01:30: still Friday's window
        (utc(2026, 3, 7, 1, 0), utc(2026, 3, 13, 21, 0)),  # Saturday 02:00 (closed): next Friday 22:00
        (utc(2026, 3, 6, 12, 0), utc(2026, 3, 6, 21, 0)),  # Friday noon: Friday 22:00
    ],
)
def test_a_window_spanning_midnight_belongs_to_the_day_it_opens(moment, expected):
    assert timing.next_opening(moment, windows((["fri"], "22:00", "02:00")), BERLIN) == expected


def test_windows_keep_their_wall_clock_hours_across_dst():
    nine_to_five = windows((["sat", "sun", "mon"], "09:00", "17:00"))
    # Saturday before the change 09:00 CET = 08:00 UTC; Monday after it 09:00 CEST = 07:00 UTC.
    assert timing.next_opening(utc(2026, 3, 28, 0, 0), nine_to_five, BERLIN) == utc(2026, 3, 28, 8, 0)
    assert timing.next_opening(utc(2026, 3, 29, 17, 0), nine_to_five, BERLIN) == utc(2026, 3, 30, 7, 0)
    # New York's autumn: Sunday 9:00 EST = 14:00 UTC (the day before it was 13:00 UTC).
    assert timing.next_opening(utc(2026, 10, 31, 22, 0), nine_to_five, NEW_YORK) == utc(2026, 11, 1, 14, 0)


def test_a_window_inside_the_skipped_hour_is_empty_that_day_and_open_the_next():
    night = windows((["sun", "mon"], "02:00", "03:00"))
    # Sunday 29 March: 02:00-03:00 does not exist in Berlin; Monday's window opens 02:00 CEST.
    assert timing.next_opening(utc(2026, 3, 29, 0, 0), night, BERLIN) == utc(2026, 3, 30, 0, 0)
    # The repeated hour of 25 October is in the window twice over: 02:00 CEST to 03:00 CET.
    assert timing.in_window(utc(2026, 10, 25, 1, 30), night, BERLIN)  # 02:30 CET, the second time round


def test_end_2359_means_to_the_end_of_the_day():
    weekend = windows((["sat", "sun"], "00:00", "23:59"))
    assert timing.in_window(utc(2026, 3, 7, 22, 59, 30), weekend, BERLIN)  # Saturday 23:59:30 CET
    assert timing.next_opening(utc(2026, 3, 8, 23, 0), weekend, BERLIN) == utc(2026, 3, 13, 23, 0)


def test_no_windows_means_any_time():
    moment = utc(2026, 3, 7, 3, 4)
    assert timing.next_opening(moment, (), BERLIN) == moment


@pytest.mark.parametrize(
    "window, message",
    [
        ({"days": [], "start": "09:00", "end": "17:00"}, "non-empty list"),
        ({"days": ["monday"], "start": "09:00", "end": "17:00"}, "'monday' is not a day"),
        ({"days": ["mon"], "start": "9:00", "end": "17:00"}, "HH:MM"),
        ({"days": ["mon"], "start": "09:00", "end": "24:00"}, "HH:MM"),
        ({"days": ["mon"], "start": "09:00", "end": "09:00"}, "must differ"),
    ],
)
def test_bad_windows_say_what_is_wrong(window, message):
    with pytest.raises(ValueError, match=message):
        timing.window_from(window)


# --- cron ---------------------------------------------------------------------------------------


def runs(expression, tz, after, count=5):
    return recurrence.next_runs(expression, tz, after, count)


def test_feb_29_comes_only_in_leap_years():
    assert runs("0 0 29 2 *", UTC, utc(2026, 1, 1), 3) == [utc(2028, 2, 29), utc(2032, 2, 29), utc(2036, 2, 29)]


def test_the_31st_skips_the_months_without_one():
    assert [moment.month for moment in runs("0 0 31 * *", UTC, utc(2026, 1, 1), 7)] == [1, 3, 5, 7, 8, 10, 12]


def test_weekdays_at_nine_stay_at_nine_across_new_yorks_spring_change():
    assert runs("0 9 * * 1-5", NEW_YORK, utc(2026, 3, 5), 4) == [
        utc(2026, 3, 5, 14),
        utc(2026, 3, 6, 14),  # Thursday and Friday, EST (UTC-5)
        utc(2026, 3, 9, 13),
        utc(2026, 3, 10, 13),  # Monday and Tuesday, EDT (UTC-4)
    ]


def test_weekdays_at_nine_stay_at_nine_across_berlins_autumn_change():
    assert runs("0 9 * * 1-5", BERLIN, utc(2026, 10, 22), 3) == [
        utc(2026, 10, 22, 7),
        utc(2026, 10, 23, 7),
        utc(2026, 10, 26, 8),
    ]


def test_a_daily_run_in_the_skipped_hour_moves_forward_and_one_in_the_repeated_hour_runs_once():
    assert [local(moment, BERLIN) for moment in runs("30 2 * * *", BERLIN, utc(2026, 3, 28), 2)] == [
        "2026-03-28 02:30 CET",
        "2026-03-29 03:30 CEST",
    ]
    assert [local(moment, BERLIN) for moment in runs("30 2 * * *", BERLIN, utc(2026, 10, 24), 3)] == [
        "2026-10-24 02:30 CEST",
        "2026-10-25 02:30 CEST",
        "2026-10-26 02:30 CET",
    ]
    assert [local(moment, NEW_YORK) for moment in runs("30 1 * * *", NEW_YORK, utc(2026, 11, 1), 2)] == [
        "2026-11-01 01:30 EDT",
        "2026-11-02 01:30 EST",
    ]
    assert [local(moment, NEW_YORK) for moment in runs("30 2 * * *", NEW_YORK, utc(2026, 3, 8), 2)] == [
        "2026-03-08 03:30 EDT",
        "2026-03-09 02:30 EDT",
    ]


def test_hourly_runs_never_repeat_an_instant_and_stay_in_order_over_the_gap():
    spring = runs("0,30 * * * *", BERLIN, utc(2026, 3, 29, 0, 15), 5)
    assert [local(moment, BERLIN) for moment in spring] == [
        "2026-03-29 01:30 CET",
        "2026-03-29 03:00 CEST",
        "2026-03-29 03:30 CEST",
        "2026-03-29 04:00 CEST",
        "2026-03-29 04:30 CEST",
    ]
    # Starting inside the gap's image: 02:30 (→ 03:30) comes after 03:15, though earlier on the wall.
    assert [local(moment, BERLIN) for moment in runs("30 2,3 * * *", BERLIN, utc(2026, 3, 29, 1, 15), 2)] == [
        "2026-03-29 03:30 CEST",
        "2026-03-30 02:30 CEST",
    ]


@pytest.mark.parametrize(
    "expression, message",
    [
        ("* * * * * *", "5 fields"),
        ("0 9 * *", "5 fields"),
        ("@daily", "5 fields"),
        ("61 * * * *", "minute"),
        ("0 0 30 2 *", "day-of-month"),
        ("0 0 L * *", "not standard cron"),
        ("0 0 * * 1#2", "not standard cron"),
        ("0 0 ? * *", "not standard cron"),
        ("every day", "5 fields"),
    ],
)
def test_nonsense_and_six_field_cron_are_refused(expression, message):
    with pytest.raises(ValueError, match=message):
        recurrence.parse_cron(expression)


def test_names_and_steps_are_standard_cron():
    assert recurrence.parse_cron("0 9 * JAN-Mar mon-fri") == "0 9 * jan-mar mon-fri"
    assert runs("*/20 9 1 1 *", UTC, utc(2026, 12, 31), 3) == [
        utc(2027, 1, 1, 9, 0),
        utc(2027, 1, 1, 9, 20),
        utc(2027, 1, 1, 9, 40),
    ]


def test_every_minute_for_a_day_is_cheap_enough_to_preview():
    day = list(zip(range(1440), recurrence.occurrences_after("* * * * *", BERLIN, utc(2026, 3, 28, 23))))
    # The skipped hour's walls land on the instants of the hour after it: every minute once, in order.
    assert len(day) == 1440 and day[-1][1] == utc(2026, 3, 29, 23, 0)
    assert all(b - a == timedelta(minutes=1) for (_, a), (_, b) in zip(day, day[1:]))
