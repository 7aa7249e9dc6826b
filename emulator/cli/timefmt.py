"""Time as kubectl shows it: RFC 3339 in, human ages and RFC 1123 dates out.

Pure functions; ``now`` is always passed in so output is reproducible. Ages follow
apimachinery's ``duration.HumanDuration`` exactly (about two significant figures,
``<invalid>`` for timestamps more than a second in the future, ``<unknown>`` for a
missing one, as kubectl's ``translateTimestampSince`` prints).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo

_FRACTION = re.compile(r"(\.\d+)")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# What Go prints for a zero time.Time in RFC 1123Z (e.g. a condition's unset lastProbeTime).
ZERO_TIME_RFC1123Z = "Mon, 01 Jan 0001 00:00:00 +0000"


def parse_time(ts: str) -> datetime:
    """An aware datetime from RFC 3339 (``Z`` or an offset, optional fraction of any length)."""
    text = ts.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Kubernetes MicroTime has 6 digits, but nanosecond stamps appear too; Python takes 6.
    text = _FRACTION.sub(lambda m: m.group(1)[:7].ljust(7, "0"), text, count=1)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def now_rfc3339() -> str:
    """The current UTC time as Kubernetes writes it: ``2026-11-21T16:40:06Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_duration(seconds: float) -> str:
    """apimachinery's ``duration.HumanDuration`` for a duration in seconds."""
    whole = int(seconds)  # Go's int(d.Seconds()) truncates toward zero
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 60 * 2:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def format_age(ts: str | None, now: datetime) -> str:
    """Age of an RFC 3339 timestamp at ``now``, as in kubectl's AGE column."""
    if not ts:
        return "<unknown>"
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return human_duration((now - parse_time(ts)).total_seconds())


def format_rfc1123z(ts: str | None, tz: tzinfo | None = None) -> str:
    """``Mon, 21 Nov 2026 16:40:06 +0000`` (Go's time.RFC1123Z), as kubectl describe shows dates.

    kubectl prints in the local zone; pass ``tz`` (e.g. ``now.tzinfo``) to choose one,
    UTC otherwise. A missing timestamp prints as Go's zero time.
    """
    if not ts:
        return ZERO_TIME_RFC1123Z
    moment = parse_time(ts).astimezone(tz or UTC)
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return (
        f"{_WEEKDAYS[moment.weekday()]}, {moment.day:02d} {_MONTHS[moment.month - 1]} {moment.year:04d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} {sign}{minutes // 60:02d}{minutes % 60:02d}"
    )
