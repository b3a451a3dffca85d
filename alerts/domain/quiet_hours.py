"""Quiet hours: a daily window of wall-clock time, in the user's time zone, during which their
non-urgent deliveries are held. Pure: the caller passes `now` (aware, any zone).

A window runs from `start` to `end` ("23:00" to "07:30"); an end at or before the start is on
the next day, and a start equal to the end is no window at all. The night's window is the one
unbroken stretch that covers every moment the user's clock shows a time in it, so on the
nights the clocks change:

- a time that occurs twice (clocks going back) starts the window at its first occurrence
  and ends it at its second: Europe/Berlin's 23:00-02:30 on the last Sunday of October lasts
  until 02:30 CET, an hour after the first 02:30 (CEST);
- a time that does not occur (clocks going forward) is taken as the moment of the jump, the
  first moment the clock shows a later time: 23:00-02:30 on the last Sunday of March ends
  at 03:00 CEST, when the clock jumps past 02:30; a window wholly inside the jump is empty
  that night.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

MAX_TIMEZONE_LENGTH = 64
_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{2})")
# Names in the time zone database that are not places: the server's own zone, a placeholder.
_NOT_PLACES = frozenset({"localtime", "Factory", "posixrules"})
_ONE_DAY = timedelta(days=1)


class InvalidQuietHours(ValueError):
    """A time of day, time zone or window that cannot be used; the message says why, with
    an example."""


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window from `start` to `end` (on the next day when not after `start`)."""

    start: time
    end: time
    zone: tzinfo

    def until(self, now: datetime) -> datetime | None:
        """When the window that `now` is in ends (aware, UTC), or None outside every one."""
        if self.start == self.end:
            return None
        day = now.astimezone(self.zone).date()
        # The window of the day before may still run (past midnight); a zone that puts its
        # clocks back across midnight can make tomorrow's begin before today's wall time ends.
        for first in (day - _ONE_DAY, day, day + _ONE_DAY):
            begins, ends = self.window(first)
            if begins <= now < ends:
                return self._joined(first, ends)
        return None

    def window(self, day: date) -> tuple[datetime, datetime]:
        """The window that starts on `day` (local), as UTC instants [begins, ends)."""
        begins, _ = instants(day, self.start, self.zone)
        _, ends = instants(day + _ONE_DAY if self.end <= self.start else day, self.end, self.zone)
        return begins, max(begins, ends)

    def _joined(self, day: date, ends: datetime) -> datetime:
        # A next window that begins before this one ends (clocks put back by more than the
        # gap between them) continues it: one stretch, one digest.
        for _ in range(3):
            day += _ONE_DAY
            begins, later = self.window(day)
            if begins > ends:
                break
            ends = max(ends, later)
        return ends


def instants(day: date, at: time, zone: tzinfo) -> tuple[datetime, datetime]:
    """The first and last UTC instants at which the clock in `zone` shows `at` on `day`: the
    same one for most times, an hour apart for a time that occurs twice, and the instant of
    the jump (twice) for a time the clocks jump over."""
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    early, late = min(first, second), max(first, second)
    if early.astimezone(zone).replace(tzinfo=None) == wall:
        return early, late
    # In a gap, fold 0 reads the time with the offset from before the jump (an instant after
    # it) and fold 1 with the one after (an instant before it): the jump lies in between.
    jump = _jump(zone, early, late)
    return jump, jump


def _jump(zone: tzinfo, before: datetime, after: datetime) -> datetime:
    """The first second in (before, after] with the offset `after` has."""
    offset = after.astimezone(zone).utcoffset()
    low, high = int(before.timestamp()), int(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def parse_clock(text: str) -> time:
    """A time of day as "HH:MM" (or "H:MM"), 00:00 to 23:59."""
    match = _CLOCK.fullmatch(text.strip())
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise InvalidQuietHours(
            f"'{text.strip()[:16]}' is not a time of day: use HH:MM from 00:00 to 23:59, "
            "like 23:00 or 07:30"
        )
    return time(int(match.group(1)), int(match.group(2)))


def format_clock(at: time) -> str:
    """ "HH:MM", as stored and shown."""
    return f"{at.hour:02d}:{at.minute:02d}"


@functools.cache
def _known_zones() -> dict[str, str]:
    """Every place in the server's time zone database, by its name in lower case."""
    return {name.lower(): name for name in available_timezones() - _NOT_PLACES}


def timezone_name(name: str) -> str:
    """The IANA time zone `name` as the database spells it ("europe/berlin" is
    "Europe/Berlin"); InvalidQuietHours for a name it does not know."""
    text = name.strip()
    if text.upper() == "UTC":
        return "UTC"  # known even to a server without a time zone database
    known = _known_zones().get(text.lower()) if len(text) <= MAX_TIMEZONE_LENGTH else None
    if known is None:
        raise InvalidQuietHours(
            f"'{text[:MAX_TIMEZONE_LENGTH]}' is not a time zone this server knows: use an IANA "
            "name like Europe/Berlin, America/New_York or UTC"
        )
    return known


def zone(name: str) -> tzinfo:
    """The time zone named `name` (an IANA name, as `timezone_name` returns)."""
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidQuietHours(f"'{name[:MAX_TIMEZONE_LENGTH]}' is not a time zone") from exc


def window(timezone: str, start: str, end: str) -> QuietHours:
    """Quiet hours from stored or typed values; InvalidQuietHours when one cannot be used."""
    return QuietHours(parse_clock(start), parse_clock(end), zone(timezone))


def quiet_until(
    now: datetime, *, timezone: str, start: str | None, end: str | None
) -> datetime | None:
    """When the quiet hours that `now` falls in end, for a user's stored settings; None
    outside them, without them, or with values that cannot be read (no window then, rather
    than deliveries held by a setting nobody can fix from here)."""
    if not start or not end:
        return None
    try:
        hours = window(timezone, start, end)
    except InvalidQuietHours:
        return None
    return hours.until(now)
