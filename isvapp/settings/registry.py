"""How a setting is declared, read and typed: the machinery under isvapp.settings.

A setting is a field of a frozen dataclass (a section), declared with :func:`setting`: its name in
configuration, how its value is read (a :class:`Kind`), its default as a merchant would write it,
and one line of documentation in English and in Chinese. :func:`read` builds a section from any
mapping of names to values (Flask's config, a restored instance's, a provisioner's): the value
configured, else the default, typed once, with no ``or default`` (a 0 stays 0).

Values come as Python from instance/config.py and as text, or what Flask's prefixed-env loader
made of it as JSON, from ``ISVAPP_*`` variables ("false", "0", "1.5", "a, b"): each kind takes
both. A value that cannot be read is refused when the app is made, naming the setting.
"""

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask


class SettingError(ValueError):
    """A configured value that cannot be read as its setting's kind; the message names the setting."""


def is_true(value):
    """A setting read as a yes/no: from the environment it may arrive as text ("false")."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def split_words(value):
    """One word, or several: a list, or text separated by commas, spaces or new lines; each once."""
    if value in (None, ""):
        return ()
    items = value if isinstance(value, (list, tuple, set, frozenset)) else str(value).replace(",", " ").split()
    return tuple(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))


@dataclass(frozen=True)
class Kind:
    """How a value is read: ``parse`` takes a configured value and returns it typed or raises
    ValueError; ``blank_is_unset``: an empty text means the default (a number, a choice);
    ``takes_none``: None is read too (a list: none is empty), else it stays None."""

    name: str
    parse: Callable[[Any], Any]
    blank_is_unset: bool = False
    takes_none: bool = False


def _whole(value):
    if isinstance(value, bool):
        raise ValueError("a yes/no is not a number")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("not a whole number")
        return int(value)
    return int(str(value).strip()) if isinstance(value, str) else int(value)


def _number(value):
    if isinstance(value, bool):
        raise ValueError("a yes/no is not a number")
    return float(str(value).strip()) if isinstance(value, str) else float(value)


def _seconds(value):
    """A duration: a timedelta (Flask's PERMANENT_SESSION_LIFETIME may be one) or seconds."""
    return value.total_seconds() if isinstance(value, timedelta) else _number(value)


TEXT = Kind("text", str)  # "" stays "": where it matters, it means "none" (the setting says)
OPTIONAL_TEXT = Kind("text, or unset", lambda value: None if value == "" else str(value))
WORD = Kind("a word", lambda value: str(value).strip().lower(), blank_is_unset=True)
WHOLE = Kind("a whole number", _whole, blank_is_unset=True)
NUMBER = Kind("a number", _number, blank_is_unset=True)
SECONDS = Kind("a number of seconds", _seconds, blank_is_unset=True)
FLAG = Kind("a yes/no", is_true)
WORDS = Kind("a list", split_words, takes_none=True)


def choice(*allowed):
    """One of ``allowed`` (compared in lower case); anything else is refused when the app is made."""

    def parse(value):
        word = str(value).strip().lower()
        if word not in allowed:
            raise ValueError(word)
        return word

    return Kind("one of " + ", ".join(allowed), parse, blank_is_unset=True)


@dataclass(frozen=True)
class Setting:
    """One setting as a merchant sees it: the name they write, its kind, its default, what it does."""

    name: str
    kind: Kind
    default: Any
    doc: str
    zh: str
    minimum: float | None = None  # smaller values are refused when the app is made
    positive: bool = False  # 0 and less are refused (a timeout, a lease)
    convert: Callable[[Any], Any] | None = None  # the typed value as the code wants it (hours -> seconds)
    example: str | None = None  # what config.example.py shows instead of the default (a placeholder)

    def typed(self, value):
        """``value`` as configured (None: unset) read as this setting's kind, checked, converted."""
        if value is None or (value == "" and self.kind.blank_is_unset):
            value = self.default
        if value is not None or self.kind.takes_none:
            try:
                value = self.kind.parse(value)
            except (TypeError, ValueError):
                raise SettingError(f"{self.name} must be {self.kind.name}, not {value!r}") from None
            if self.minimum is not None and value < self.minimum:
                raise SettingError(f"{self.name} must be at least {self.minimum:g}, not {value!r}")
            if self.positive and not value > 0:
                raise SettingError(f"{self.name} must be more than 0, not {value!r}")
        return self.convert(value) if self.convert is not None else value


def setting(name, kind, default, doc, zh, **options):
    """A section's field that is the setting ``name``: its default is the default as read."""
    declared = Setting(name, kind, default, doc, zh, **options)
    return dataclasses.field(default=declared.typed(None), metadata={"setting": declared})


def declared_in(cls) -> list[Setting]:
    """The settings ``cls`` declares itself (not its bases'), in order."""
    own = vars(cls).get("__annotations__", {})
    return [f.metadata["setting"] for f in dataclasses.fields(cls) if "setting" in f.metadata and f.name in own]


def read(cls, config: Mapping, **more):
    """The section ``cls`` from ``config``: its own settings and its bases', typed (``more``: its
    other fields)."""
    values = {}
    for field in dataclasses.fields(cls):
        declared = field.metadata.get("setting")
        if declared is not None:
            values[field.name] = declared.typed(config.get(declared.name))
    return cls(**values, **more)


# --- names nobody declared -----------------------------------------------------------------------------

PREFIX = "ISVAPP_"
# Names Flask-SQLAlchemy and Flask-Babel read from the same config (Flask's own are in
# Flask.default_config).
FOREIGN_PREFIXES = ("SQLALCHEMY_", "BABEL_")


def unknown_names(
    names: Iterable[str], environment: Iterable[str], known: Iterable[str], environment_only: Iterable[str]
):
    """[(the unknown name as written, the nearest known one or None)] for UPPER_CASE names from
    instance/config.py (``names``) and ``ISVAPP_*`` variables (``environment``) that no setting
    declares, Flask's own aside."""
    known = set(known)
    flask_own = set(Flask.default_config)
    found = []
    for name in sorted(set(names)):
        if name.isupper() and name not in known and name not in flask_own and not name.startswith(FOREIGN_PREFIXES):
            found.append((name, nearest(name, known)))
    variables = {PREFIX + name for name in known} | set(environment_only)
    for name in sorted(set(environment)):
        if not name.startswith(PREFIX) or name in variables:
            continue
        bare = name[len(PREFIX) :].split("__", 1)[0]  # ISVAPP_A__B sets the key A's item B
        if bare in known or bare in flask_own or bare.startswith(FOREIGN_PREFIXES):
            continue
        close = nearest(name[len(PREFIX) :], [variable[len(PREFIX) :] for variable in variables])
        found.append((name, PREFIX + close if close else None))
    return found


def nearest(name, candidates):
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return close[0] if close else None
