"""Texts built in Python, translated when they are read: a msgid and its named parameters.

A go-live detail, an alert or a callback's warning is made where its facts are known (a worker,
the protocol layer, a request) and read later, by someone whose language the maker cannot know:
the pages show it in their reader's language, a robot or a mail gets it in ALERT_LANGUAGE. So it
is kept as a :class:`Text`, a msgid with ``%(name)s`` parameters (the catalog's Chinese says the
same with the same names), and rendered at read time by :func:`render` with the reader's gettext.

A parameter whose name ends in ``_at`` is a moment (a datetime, or its ISO text once stored):
rendered in the reader's time zone, like every time on the pages. Pure: no Flask, no database.
The catalogs are isvapp/translations (scripts/translations.sh extracts msgids marked with ``N_``).
"""

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.support import NullTranslations, Translations
from markupsafe import Markup

TRANSLATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "translations")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
PARAM_LIMIT = 200  # characters of one parameter's value kept (a request's text, quoted in a warning)


def N_(msgid):
    """Marks ``msgid`` for the catalog without translating it: it is translated when read."""
    return msgid


@dataclass(frozen=True)
class Text:
    """A msgid and the values of its ``%(name)s`` parameters."""

    msgid: str
    params: dict = field(default_factory=dict)

    @classmethod
    def of(cls, msgid, **params):
        return cls(msgid, {name: _storable(value) for name, value in params.items()})

    def as_json(self):
        return [self.msgid, self.params] if self.params else [self.msgid]

    @classmethod
    def from_json(cls, value):
        """A stored Text ([msgid] or [msgid, params]); anything else (a row from before texts were
        stored this way) is shown as the words it holds."""
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
            params = value[1] if len(value) > 1 and isinstance(value[1], dict) else {}
            return cls(value[0], params)
        return cls(str(value or ""), {})

    @property
    def english(self):
        return render(self)


def _storable(value):
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value]
    return str(value)[:PARAM_LIMIT]


def iso(moment):
    """A naive-UTC (as stored) or aware datetime as ISO-8601 UTC text."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _moment(value):
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def local_time(moment, zone_name, fmt=TIME_FORMAT):
    """A stored (naive UTC) or aware moment in ``zone_name``; "" for None."""
    if moment is None:
        return ""
    aware = _moment(moment)
    if aware is None:
        return str(moment)
    return aware.astimezone(ZoneInfo(zone_name)).strftime(fmt)


def zone_label(zone_name, now=None):
    """The zone as its offset from UTC, the way a reader compares it: "UTC+8", "UTC-3:30", "UTC"."""
    offset = (
        datetime.now(ZoneInfo(zone_name)).utcoffset()
        if now is None
        else now.astimezone(ZoneInfo(zone_name)).utcoffset()
    )
    minutes = int(offset.total_seconds() // 60) if offset else 0
    if not minutes:
        return "UTC"
    sign, minutes = ("+" if minutes > 0 else "-"), abs(minutes)
    return f"UTC{sign}{minutes // 60}" + (f":{minutes % 60:02d}" if minutes % 60 else "")


def untranslated(msgid):
    """The gettext of English: the msgid itself."""
    return msgid


def render(text, gettext=untranslated, zone_name="UTC", html=False):
    """``text`` (a Text, or a plain str from before) in the reader's words: ``gettext`` translates the
    msgid, ``*_at`` parameters are shown in ``zone_name``. A translation whose parameters do not fit
    falls back to the English; a plain str is shown as it is. ``html``: Markup for a page, the
    parameters' values (ids, names, figures: data, not words) marked ``translate="no"``."""
    if not isinstance(text, Text):
        return "" if text is None else str(text)
    values = {name: _value(name, value, gettext, zone_name, html) for name, value in text.params.items()}
    translated = gettext(text.msgid)
    if not values:
        return Markup.escape(translated) if html else translated
    for candidate in (translated, text.msgid):
        try:
            return Markup.escape(candidate) % values if html else candidate % values
        except (KeyError, ValueError, TypeError):
            continue
    return Markup.escape(text.msgid) if html else text.msgid


def _value(name, value, gettext, zone_name, html):
    """A parameter as the reader sees it: a moment in their zone, a Text (a channel's name) in their
    words, a list joined."""
    if isinstance(value, Text):
        return render(value, gettext, zone_name, html)
    if isinstance(value, list):
        shown = [_value(name, v, gettext, zone_name, html) for v in value]
        return Markup(", ").join(shown) if html else ", ".join(map(str, shown))
    if name.endswith("_at") and value:
        value = local_time(value, zone_name, "%Y-%m-%d %H:%M")
    return Markup('<span translate="no">%s</span>') % (value,) if html else value


@lru_cache(maxsize=8)
def catalog(language):
    """The compiled catalog of ``language`` ("en" needs none): for messages sent outside a page."""
    if language == "en":
        return NullTranslations()
    return Translations.load(TRANSLATIONS, [language])


def translator(language):
    """gettext for ``language``, for :func:`render` outside a request (alerts, mails)."""
    return catalog(language).gettext
