"""Dates and timestamps, parsed in one place for files, REST requests and the command line.

What is accepted: ISO 8601 (``2026-04-11``, ``2026-04-11T10:00:00Z``, with or without an
offset; offsets are converted to UTC and dropped), ``DD.MM.YYYY`` (the dotted form German,
Polish and Russian exports write, always day-first) and, for files, what pandas reads as a
date otherwise (``04/11/2026`` is month-first, as US exports write it). Numbers are not
dates (an epoch in seconds and one in milliseconds look alike). Everything outside
``EARLIEST`` .. ``LATEST`` is refused with a message, never wrapped into pandas' range.
"""

from __future__ import annotations

import re
from datetime import date, datetime

import numpy as np
import pandas as pd

EARLIEST = pd.Timestamp("1970-01-01")
LATEST = pd.Timestamp("2100-01-01")  # exclusive
RANGE = f"between {EARLIEST:%Y-%m-%d} and {LATEST - pd.Timedelta(days=1):%Y-%m-%d}"
_DOTTED = re.compile(r"^\s*(\d{1,2})\.(\d{1,2})\.(\d{4})(?=$|[\sT])")
_YEAR = re.compile(r"^\s*[+-]?(\d{1,6})-")
# The common extended ISO forms (what JSON callers send), read by the standard library in
# about a microsecond; everything else goes through pandas' ISO 8601 parser (~100x slower).
_PLAIN_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?(?:Z|[+-]\d{2}:\d{2})?"
)


def future_after() -> pd.Timestamp:
    """Events after this are in the future: today (UTC) plus a day for time zones."""
    return pd.Timestamp.now("UTC").tz_localize(None).normalize() + pd.Timedelta(days=2)


class DateError(ValueError):
    """A value that is not a usable date; the message names the field, never the value."""


def parse_date(value: object, field: str) -> pd.Timestamp:
    """One date or date-time from a request or the command line, as naive UTC."""
    if isinstance(value, pd.Timestamp | datetime | date) and not isinstance(value, bool):
        ts = pd.Timestamp(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise DateError(f"{field}: empty; expected a date such as 2026-04-30")
        ts = _parse_text(text, field)
    else:
        kind = "a number" if isinstance(value, int | float) else type(value).__name__
        raise DateError(f"{field}: expected a date string such as 2026-04-30, got {kind}")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    if not EARLIEST <= ts < LATEST:
        raise DateError(f"{field}: outside the supported range (dates {RANGE})")
    return ts


def _parse_text(text: str, field: str) -> pd.Timestamp:
    if _PLAIN_ISO.fullmatch(text):
        try:
            return pd.Timestamp(datetime.fromisoformat(text))
        except ValueError:  # e.g. 2026-02-30: pandas' parser gives the message below
            pass
    year = _YEAR.match(text)
    if year and not EARLIEST.year <= int(year.group(1)) < LATEST.year:
        raise DateError(f"{field}: outside the supported range (dates {RANGE})")
    dotted = _DOTTED.match(text)
    if dotted:  # rewritten as ISO; parse_date checks the range of what it gives
        day, month, yr = (int(g) for g in dotted.groups())
        rest = text[dotted.end() :].strip().lstrip("T")
        text = f"{yr:04d}-{month:02d}-{day:02d}" + (f" {rest}" if rest else "")
    try:
        return pd.Timestamp(pd.to_datetime(text, format="ISO8601"))
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
        raise DateError(
            f"{field}: not a date (expected ISO 8601 such as 2026-04-30 or 2026-04-30T10:00:00Z,"
            " or DD.MM.YYYY)"
        ) from None


def parse_timestamps(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """A column of dates -> (naive UTC ``datetime64[ns]``, the reason each bad cell is bad).

    Missing cells stay missing with no reason; a cell that is present but unreadable or out
    of range is NaT and has a reason.
    """
    reasons = pd.Series(None, index=values.index, dtype=object)
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    else:
        present = values.notna()
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            numeric = present.copy()
        elif pd.api.types.is_object_dtype(values):  # mixed cells (CSV read as objects, JSON)
            numeric = values.map(lambda v: isinstance(v, int | float | np.number | bool))
            numeric &= present
        else:
            numeric = pd.Series(False, index=values.index)
        as_text = values.where(~numeric).astype("string").str.strip()
        dotted = as_text.str.match(_DOTTED.pattern).fillna(False).astype(bool)
        year = pd.to_numeric(as_text.str.extract(_YEAR.pattern)[0], errors="coerce")
        out_of_range = year.notna() & ((year < EARLIEST.year) | (year >= LATEST.year))
        parseable = as_text.astype(object).where(~(dotted | out_of_range) & as_text.notna(), None)
        ts = pd.to_datetime(parseable, errors="coerce", format="mixed", utc=True)
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
        for i in np.flatnonzero(dotted.to_numpy()):
            try:
                ts.iat[i] = parse_date(as_text.iat[i], "")
            except DateError as exc:
                reasons.iat[i] = str(exc).lstrip(": ")
        reasons[numeric & present] = "a number, not a date"
        reasons[out_of_range] = f"outside the supported range (dates {RANGE})"
        reasons[present & ts.isna() & reasons.isna()] = "unparseable timestamp"
    # Range-checked before the cast to nanoseconds: a coarser unit (a Parquet column, or what
    # pandas parsed text into) can hold year 1, which the cast would overflow on.
    outside = ts.notna() & ((ts < EARLIEST) | (ts >= LATEST))
    reasons[outside] = f"outside the supported range (dates {RANGE})"
    return ts.where(~outside).astype("datetime64[ns]"), reasons
