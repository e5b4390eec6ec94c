"""Oddities: what a verified request got wrong in shape, kept instead of refused.

The marketplace changes what it sends faster than a merchant can patch, so a signed request is
refused only when its activity truly cannot be performed; everything else it gets wrong is
noted here while it is read and processed, and shown to the merchant on the callback log.
A context variable, so the schemas (pure) and the domain (Flask) note into the same list
without passing it through every call.
"""

from contextlib import contextmanager
from contextvars import ContextVar

MAX_NOTES = 20
_current: ContextVar[list[str] | None] = ContextVar("koo_oddities", default=None)


def note(text):
    """Record one oddity of the request being read (ignored outside :func:`collecting`)."""
    notes = _current.get()
    if notes is not None and len(notes) < MAX_NOTES and text not in notes:
        notes.append(str(text)[:300])


@contextmanager
def collecting():
    """Collect the oddities noted inside the block into the list it yields."""
    notes = []
    token = _current.set(notes)
    try:
        yield notes
    finally:
        _current.reset(token)


def start():
    """Begin a fresh list for the request now being served (one request at a time per context)."""
    notes = []
    _current.set(notes)
    return notes
