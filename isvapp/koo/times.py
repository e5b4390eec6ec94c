"""Reading the marketplace's times, in every form it or its Java sample plausibly writes.

The reference says ``yyyyMMddHHmmss``; the current refreshInstance example sends 17 digits
(``yyyyMMddHHmmssSSS``), getLicenseAsync sends ``2023-10-27 10:30:15 z``, and Java code may
write ISO-8601 or epoch milliseconds. A time that can be read is never a reason to refuse.
Times without a zone are UTC, as the reference says.
"""

import re
from datetime import UTC, datetime, timedelta

KOO_TIME_FORMAT = "%Y%m%d%H%M%S"
_DIGITS = re.compile(r"[0-9]+")
# Forms the documents show; anything else that still reads is accepted with a note.
DOCUMENTED_DIGIT_LENGTHS = (14, 17)
_DIGIT_FORMATS = {14: KOO_TIME_FORMAT, 17: KOO_TIME_FORMAT, 12: "%Y%m%d%H%M", 8: "%Y%m%d"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _from_digits(text):
    if len(text) in _DIGIT_FORMATS:
        stamp = datetime.strptime(text[:14] if len(text) == 17 else text, _DIGIT_FORMATS[len(text)])
        millis = int(text[14:]) if len(text) == 17 else 0
        return stamp.replace(tzinfo=UTC) + timedelta(milliseconds=millis)
    if len(text) == 13:  # epoch milliseconds
        return EPOCH + timedelta(milliseconds=int(text))
    if len(text) == 10:  # epoch seconds
        return EPOCH + timedelta(seconds=int(text))
    raise ValueError("unknown digit form")


def read_time(value):
    """An aware UTC datetime, or None when the value cannot be read as a time.

    Returns (datetime, documented) where ``documented`` says the form is one the pages show.
    """
    if isinstance(value, bool) or value is None:
        return None, False
    if isinstance(value, (int, float)):
        value = str(int(value))
    if not isinstance(value, str):
        return None, False
    text = value.strip()
    try:
        if _DIGITS.fullmatch(text):
            return _from_digits(text), len(text) in DOCUMENTED_DIGIT_LENGTHS
        documented = text.endswith((" z", " Z"))
        if text[-1:] in ("z", "Z"):
            text = text[:-1].strip() + "+00:00"
        parsed = datetime.fromisoformat(text.replace("/", "-"))
    except (ValueError, OverflowError):
        return None, False
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC), documented


def format_time(value):
    """``yyyyMMddHHmmss`` in UTC: how isvapp writes a time back to the marketplace."""
    return None if value is None else value.astimezone(UTC).strftime(KOO_TIME_FORMAT)


ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"


def naive_utc(moment):
    """A naive UTC datetime, as the database stores times: an aware one converted, a naive one
    (already UTC) and None as they are."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment is not None and moment.tzinfo else moment


def iso_utc(moment):
    """``2026-12-02T08:00:00Z``: how isvapp's own APIs and documents write a time (naive means UTC)."""
    return None if moment is None else naive_utc(moment).strftime(ISO_UTC)
