"""Quiet hours: the window as a pure function of (now, time zone, start, end), table-driven
across the nights the clocks change and checked against wall-clock arithmetic by hypothesis;
and the REST settings (`PATCH /v1/users/me`). The hold stage and the digest, with an injected
clock, are in `test_quiet_hours_delivery.py`."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.domain.quiet_hours import (
    InvalidQuietHours,
    QuietHours,
    parse_clock,
    quiet_until,
    timezone_name,
    window,
    zone,
)
from tests.api_helpers import Api


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (time zone, start, end, now UTC, the end of the window `now` is in, UTC, or None)
WINDOWS = [
    # Across midnight, and within one day; the end is not in the window, the start is.
    ("UTC", "23:00", "07:30", "2026-07-01 22:59", None),
    ("UTC", "23:00", "07:30", "2026-07-01 23:00", "2026-07-02 07:30"),
    ("UTC", "23:00", "07:30", "2026-07-02 03:00", "2026-07-02 07:30"),
    ("UTC", "23:00", "07:30", "2026-07-02 07:30", None),
    ("UTC", "09:00", "17:00", "2026-07-01 08:59", None),
    ("UTC", "09:00", "17:00", "2026-07-01 09:00", "2026-07-01 17:00"),
    ("UTC", "09:00", "17:00", "2026-07-01 16:59", "2026-07-01 17:00"),
    ("UTC", "09:00", "17:00", "2026-07-01 17:00", None),
    ("UTC", "00:00", "00:00", "2026-07-01 12:00", None),  # start == end: no window
    # In the user's zone: 23:00 CEST is 21:00 UTC in summer, 23:00 CET 22:00 in winter.
    ("Europe/Berlin", "23:00", "07:30", "2026-07-01 20:59", None),
    ("Europe/Berlin", "23:00", "07:30", "2026-07-01 21:00", "2026-07-02 05:30"),
    ("Europe/Berlin", "23:00", "07:30", "2026-01-10 22:00", "2026-01-11 06:30"),
    ("Asia/Kolkata", "22:00", "06:00", "2026-07-01 16:30", "2026-07-02 00:30"),
    # The last Sunday of March: the night is an hour short (CET in, CEST out).
    ("Europe/Berlin", "23:00", "07:30", "2026-03-28 21:59", None),
    ("Europe/Berlin", "23:00", "07:30", "2026-03-28 22:00", "2026-03-29 05:30"),
    ("Europe/Berlin", "23:00", "07:30", "2026-03-29 05:29", "2026-03-29 05:30"),
    ("Europe/Berlin", "23:00", "07:30", "2026-03-29 05:30", None),
    # The last Sunday of October: an hour long (CEST in, CET out).
    ("Europe/Berlin", "23:00", "07:30", "2026-10-24 21:00", "2026-10-25 06:30"),
    ("Europe/Berlin", "23:00", "07:30", "2026-10-25 06:29", "2026-10-25 06:30"),
    ("Europe/Berlin", "23:00", "07:30", "2026-10-25 06:30", None),
    ("America/New_York", "23:00", "07:30", "2026-03-08 04:00", "2026-03-08 11:30"),
    ("America/New_York", "23:00", "07:30", "2026-11-01 04:00", "2026-11-01 12:30"),
    # A start the clocks jump over (02:00 CET -> 03:00 CEST) is the jump: 03:00 CEST.
    ("Europe/Berlin", "02:30", "06:00", "2026-03-29 00:59", None),
    ("Europe/Berlin", "02:30", "06:00", "2026-03-29 01:00", "2026-03-29 04:00"),
    # So is such an end: quiet until the clock jumps past 02:30.
    ("Europe/Berlin", "23:00", "02:30", "2026-03-29 00:59", "2026-03-29 01:00"),
    ("Europe/Berlin", "23:00", "02:30", "2026-03-29 01:00", None),
    # A window wholly inside the jump is empty that night.
    ("Europe/Berlin", "02:10", "02:50", "2026-03-29 00:59", None),
    ("Europe/Berlin", "02:10", "02:50", "2026-03-29 01:00", None),
    # A time that occurs twice (03:00 CEST -> 02:00 CET): a start at its first occurrence,
    # an end at its second, so that the window covers both.
    ("Europe/Berlin", "02:30", "06:00", "2026-10-25 00:29", None),
    ("Europe/Berlin", "02:30", "06:00", "2026-10-25 00:30", "2026-10-25 05:00"),
    ("Europe/Berlin", "23:00", "02:30", "2026-10-25 00:30", "2026-10-25 01:30"),
    ("Europe/Berlin", "23:00", "02:30", "2026-10-25 01:29", "2026-10-25 01:30"),
    ("Europe/Berlin", "23:00", "02:30", "2026-10-25 01:30", None),
    # Clocks put back across midnight make two nights' windows overlap: one stretch.
    ("America/Santiago", "23:30", "23:15", "2024-04-06 12:00", "2024-04-08 03:15"),
    # A day that never was (Samoa, 30 December 2011): the window runs on through the jump.
    ("Pacific/Apia", "23:00", "07:00", "2011-12-30 09:30", "2011-12-30 17:00"),
]


@pytest.mark.parametrize(("name", "start", "end", "now", "ends"), WINDOWS)
def test_the_window_now_is_in_and_when_it_ends(
    name: str, start: str, end: str, now: str, ends: str | None
) -> None:
    expected = utc(ends) if ends else None
    assert quiet_until(utc(now), timezone=name, start=start, end=end) == expected


def test_no_settings_or_unreadable_ones_mean_no_window() -> None:
    now = utc("2026-07-01 23:30")
    assert quiet_until(now, timezone="UTC", start=None, end=None) is None
    assert quiet_until(now, timezone="Mars/Olympus", start="23:00", end="07:00") is None
    assert quiet_until(now, timezone="UTC", start="25:00", end="07:00") is None


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("23:00", time(23)), ("7:30", time(7, 30)), (" 00:00 ", time(0)), ("23:59", time(23, 59))],
)
def test_times_of_day(text: str, parsed: time) -> None:
    assert parse_clock(text) == parsed


@pytest.mark.parametrize(
    "text", ["24:00", "23:60", "7", "07.30", "-1:00", "", "\u0661\u0662:\u0660\u0660", "x" * 999]
)
def test_what_is_not_a_time_of_day_says_so(text: str) -> None:
    with pytest.raises(InvalidQuietHours, match="is not a time of day: use HH:MM"):
        parse_clock(text)


def test_time_zones_are_iana_names_spelled_as_the_database_does() -> None:
    assert timezone_name("Europe/Berlin") == "Europe/Berlin"
    assert timezone_name(" europe/berlin ") == "Europe/Berlin"
    assert timezone_name("utc") == "UTC"
    for bad in ("Mars/Olympus", "../etc/passwd", "/etc/localtime", "localtime", "", "x" * 100):
        with pytest.raises(InvalidQuietHours, match="is not a time zone this server knows"):
            timezone_name(bad)
    with pytest.raises(InvalidQuietHours):
        zone("Europe")


ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",  # DST in the other half of the year
    "America/Santiago",  # changes at midnight
    "Europe/Dublin",  # "negative" DST in the database
    "Asia/Kolkata",
    "Pacific/Apia",
]


def _transitions(name: str) -> list[datetime]:
    """The instants of 2026 (and of Samoa's lost day) at which the zone's offset changes."""
    tz, found = zone(name), []
    hour = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(366 * 24):
        if (hour + timedelta(hours=1)).astimezone(tz).utcoffset() != hour.astimezone(
            tz
        ).utcoffset():
            found.append(hour)
        hour += timedelta(hours=1)
    return found + ([datetime(2011, 12, 30, 10, tzinfo=UTC)] if name == "Pacific/Apia" else [])


TRANSITIONS = {name: _transitions(name) for name in ZONES}
CLOCKS = st.builds(time, st.integers(0, 23), st.integers(0, 59))
ANY_TIME = st.datetimes(datetime(2010, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC))


def _in_range(at: time, start: time, end: time) -> bool:
    wall = at.replace(second=0, microsecond=0)
    if start < end:
        return start <= wall < end
    return start != end and (wall >= start or wall < end)


def _steady(name: str, now: datetime) -> bool:
    """No change of offset within two days of `now`."""
    tz = zone(name)
    return all(
        (now + timedelta(hours=h)).astimezone(tz).utcoffset() == now.astimezone(tz).utcoffset()
        for h in range(-50, 51)
    )


@settings(max_examples=400, deadline=None)
@given(data=st.data(), start=CLOCKS, end=CLOCKS)
def test_the_window_agrees_with_the_wall_clock(data: st.DataObject, start: time, end: time) -> None:
    name = data.draw(st.sampled_from(ZONES), label="zone")
    near = st.sampled_from(TRANSITIONS[name] or [datetime(2026, 3, 29, 1, tzinfo=UTC)]).flatmap(
        lambda t: st.integers(-36 * 60, 36 * 60).map(lambda m: t + timedelta(minutes=m))
    )
    now = data.draw(st.one_of(ANY_TIME, near), label="now")
    hours = QuietHours(start, end, zone(name))
    ends = hours.until(now)
    local = now.astimezone(hours.zone)
    # Whenever the clock shows a time in the window, it is quiet (around a change too).
    if _in_range(local.time(), start, end):
        assert ends is not None
    if ends is None:
        return
    assert now < ends <= now + timedelta(hours=50)
    assert hours.until(ends) is None  # it really ends there
    jumped = (ends - timedelta(seconds=1)).astimezone(hours.zone).utcoffset() != (
        ends.astimezone(hours.zone).utcoffset()
    )
    assert ends.astimezone(hours.zone).time() == end or jumped
    if _steady(name, now):  # far from any change: plain wall-clock arithmetic
        assert _in_range(local.time(), start, end)
        minutes = (end.hour * 60 + end.minute - local.hour * 60 - local.minute) % 1440
        floor = now - timedelta(seconds=local.second, microseconds=local.microsecond)
        assert ends == floor + timedelta(minutes=minutes)


def test_window_builds_from_stored_values() -> None:
    hours = window("Europe/Berlin", "23:00", "7:30")
    assert (hours.start, hours.end) == (time(23), time(7, 30))
    with pytest.raises(InvalidQuietHours):
        window("Europe/Berlin", "23:00", "31:00")


# --- REST ---------------------------------------------------------------------------------


def test_users_set_their_time_zone_and_quiet_hours(api: Api) -> None:
    alice = api.user("alice")
    me = api.client.get("/v1/users/me", headers=alice).json()
    assert me["timezone"] == "UTC" and me["quiet_hours"] is None

    body = {"timezone": "europe/berlin", "quiet_hours": {"start": "23:00", "end": "7:30"}}
    r = api.client.patch("/v1/users/me", json=body, headers=alice)
    assert r.status_code == 200, r.text
    shown = {"timezone": "Europe/Berlin", "quiet_hours": {"start": "23:00", "end": "07:30"}}
    assert {k: r.json()[k] for k in shown} == shown
    me = api.client.get("/v1/users/me", headers=alice).json()
    assert {k: me[k] for k in shown} == shown
    admin_view = api.client.get(f"/v1/users/{me['id']}", headers=api.admin).json()
    assert {k: admin_view[k] for k in shown} == shown

    # Each field alone; null turns quiet hours off and leaves the zone.
    r = api.client.patch("/v1/users/me", json={"timezone": "Asia/Tokyo"}, headers=alice)
    assert r.json()["quiet_hours"] == shown["quiet_hours"]
    r = api.client.patch("/v1/users/me", json={"quiet_hours": None}, headers=alice)
    assert r.json()["quiet_hours"] is None and r.json()["timezone"] == "Asia/Tokyo"

    # The admin sets them too, beside the name.
    body = {"name": "Alice", "quiet_hours": {"start": "22:00", "end": "06:00"}}
    r = api.client.patch(f"/v1/users/{me['id']}", json=body, headers=api.admin)
    assert r.status_code == 200 and r.json()["quiet_hours"] == {"start": "22:00", "end": "06:00"}
    [listed] = api.client.get("/v1/users", headers=api.admin).json()
    assert listed["timezone"] == "Asia/Tokyo" and listed["name"] == "Alice"


BAD_SETTINGS: list[tuple[dict[str, object], str]] = [
    ({"timezone": "Mars/Olympus"}, "not a time zone this server knows"),
    ({"timezone": "../../etc/passwd"}, "not a time zone this server knows"),
    ({"timezone": None}, "should be a valid string"),
    ({"timezone": 5}, "should be a valid string"),
    ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "is not a time of day"),
    ({"quiet_hours": {"start": "23:00"}}, "Field required"),
    ({"quiet_hours": {"start": "23:00", "end": "23:00"}}, "start and end are the same time"),
    ({"quiet_hours": "23:00-07:00"}, "valid dictionary"),
    ({"quiet_hours": {"start": "23:00", "end": "07:00", "days": 5}}, "Extra inputs"),
    ({"name": "mallory"}, "Extra inputs"),  # the admin renames users
    ({"telegram_user_id": 42}, "Extra inputs"),  # a chat is proved, never claimed
]


def test_bad_settings_get_a_422_that_says_why(api: Api) -> None:
    alice = api.user("alice")
    for body, complaint in BAD_SETTINGS:
        r = api.client.patch("/v1/users/me", json=body, headers=alice)
        assert r.status_code == 422, (body, r.text)
        assert complaint in r.text, (body, r.text)
    me = api.client.get("/v1/users/me", headers=alice).json()
    assert me["timezone"] == "UTC" and me["quiet_hours"] is None


def test_the_admin_token_has_no_settings_of_its_own(api: Api) -> None:
    r = api.client.patch("/v1/users/me", json={"timezone": "UTC"}, headers=api.admin)
    assert r.status_code == 403
