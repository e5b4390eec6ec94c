"""How stored values read on the pages: every time in one zone (DISPLAY_TIMEZONE, labelled in the
header), "never" for an expiry that never comes, texts kept as msgids (isvapp.texts) in the
reader's language, and states, kinds and codes by their label.

What the marketplace or the buyer sent (ids, names, a resultMsg) is shown as it came; the
templates mark it ``translate="no"`` (tests/test_tour.py reads every other word of the Chinese
pages and fails on English).
"""

import re

from flask import current_app
from markupsafe import Markup

from .. import texts
from ..background import alerts
from ..domain import callbacklog
from ..koo import codes
from ..koo.licensecodes import never_expires
from ..settings import settings_of
from ..texts import N_
from . import i18n, labels


def zone_name():
    return settings_of(current_app).pages.timezone


def local_time(moment):
    """Stored times are naive UTC; shown in DISPLAY_TIMEZONE (the header names it)."""
    return texts.local_time(moment, zone_name())


def expiry(moment):
    """An expiry time, or "never" for the marketplace's far-future one (koo.licensecodes.never_expires)."""
    if never_expires(moment):
        return i18n.gettext("never expires")
    return local_time(moment)


def zone_label():
    """The header's "times in UTC+8" figure for DISPLAY_TIMEZONE."""
    return texts.zone_label(zone_name())


def say(text):
    """A Text (or a plain str from before texts were kept) in the reader's language, as Markup: its
    parameters' values are data, marked ``translate="no"``."""
    return texts.render(text, i18n.gettext, zone_name(), html=True)


def say_plain(text):
    """The same as plain text, for an attribute (a tooltip)."""
    return texts.render(text, i18n.gettext, zone_name())


def label(table, value):
    """``value``'s label from a labels table, translated; a value the table does not know as it is."""
    if value in table:
        return i18n.gettext(table[value])
    return "" if value is None else value


def result(code):
    """A result code and what it means: "000001 authentication failed"."""
    meaning = labels.RESULT_LABELS.get(code or "")
    return f"{code} {i18n.gettext(meaning)}" if meaning else code or ""


def answer_msg(row):
    """The resultMsg isvapp answered, as sent, when it says more than its code's meaning."""
    message = (row.result_msg or "").strip()
    if not message or message == codes.MESSAGES.get(row.result_code or ""):
        return ""
    return Markup(" <code>%s</code>") % message


def warnings(row, plain=False):
    """A callback's warnings, one a line, in the reader's language (the English words of a row
    from before the notes were kept). ``plain``: text for an attribute, not Markup."""
    if row.warning_notes:
        show = say_plain if plain else say
        return [show(texts.Text.from_json(note)) for note in row.warning_notes]
    return (row.warnings or "").split("\n") if row.warnings else []


def _pattern(msgid):
    parts = re.split(r"%\((\w+)\)s", msgid)
    return re.compile(
        "".join(re.escape(part) if n % 2 == 0 else f"(?P<{part}>.+?)" for n, part in enumerate(parts)) + "$"
    )


NOTE_PATTERNS = [(msgid, _pattern(msgid)) for msgid in callbacklog.NOTES.values()]


def note(text):
    """A callback's note in the reader's language: the log keeps the English, filled in from one of
    callbacklog.NOTES; its values are read back out of it."""
    for msgid, pattern in NOTE_PATTERNS:
        found = pattern.match(text or "")
        if found:
            return say(texts.Text(msgid, found.groupdict()))
    return text or ""


def alert(row):
    """An alert's (subject, text) in the reader's language and zone."""
    return alerts.message(row, i18n.gettext, zone_name(), repeats=False, html=True)


def channel_answer(channel, answer):
    """What an alert channel answered a message it took (channels.send_recorded keeps it), as
    Markup: the mail server and the recipients it took it for, or a robot's JSON as it came."""
    if channel == "email" and isinstance(answer, dict):
        text = texts.Text(
            N_("The mail server %(server)s took it for %(recipients)s."),
            {"server": answer.get("server", ""), "recipients": ", ".join(answer.get("accepted") or [])},
        )
    else:
        text = texts.Text(N_("The channel answered: %(answer)s"), {"answer": str(answer)})
    return say(text)


HELPERS = {
    "say": say,
    "label": label,
    "labels": labels,
    "result": result,
    "answer_msg": answer_msg,
    "data_fields": labels.DATA_FIELDS,
    "warnings": warnings,
    "note": note,
    "alert": alert,
    "zone_label": zone_label,
    "expiry": expiry,
    "channel_answer": channel_answer,
}
