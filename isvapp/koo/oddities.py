"""Oddities: what a verified request got wrong in shape, kept instead of refused.

The marketplace changes what it sends faster than a merchant can patch, so a signed request is
refused only when its activity truly cannot be performed; everything else it gets wrong is
noted here while it is read and processed, and shown to the merchant on the callback log.
A context variable, so the schemas (pure) and the domain (Flask) note into the same list
without passing it through every call.

A note is a msgid with named parameters (isvapp.texts.Text): the callback log keeps its English
words (the log's text, the CSV export) and the note itself, which the pages show in their
reader's language. The msgid is a literal at every call, for the catalog's extraction.
"""

from contextlib import contextmanager
from contextvars import ContextVar

from ..texts import Text

MAX_NOTES = 20
MAX_CHARS = 300
_current: ContextVar[list[Text] | None] = ContextVar("koo_oddities", default=None)


def note(msgid, **params):
    """Record one oddity of the request being read (ignored outside :func:`collecting`)."""
    notes = _current.get()
    if notes is None or len(notes) >= MAX_NOTES:
        return
    found = Text.of(msgid, **params)
    if all(found.english != n.english for n in notes):
        notes.append(found)


def english(notes):
    """The notes' words, one a line, as the callback log's ``warnings`` keeps them."""
    return "\n".join(n.english[:MAX_CHARS] for n in notes) or None


@contextmanager
def collecting():
    """Collect the oddities noted inside the block into the list it yields."""
    notes: list[Text] = []
    token = _current.set(notes)
    try:
        yield notes
    finally:
        _current.reset(token)


def start():
    """Begin a fresh list for the request now being served (one request at a time per context)."""
    notes: list[Text] = []
    _current.set(notes)
    return notes
