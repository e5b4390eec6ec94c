"""JSON as isvapp reads a request body: one parser for every route, with one set of refusals.

A key given twice in one object is refused. Which of two values a reader keeps is the reader's
choice (Python's json keeps the last, a regex over the raw bytes finds the first), so a body
holding a key twice can be verified under one reading and acted on under the other: a fresh
"timeStamp" put in front of a 30-day-old signed G1 Kit body passed the window that way. No
honest sender repeats a key; refusing the body is the only reading with one meaning.

A body nested deeper than the interpreter can recurse (about a thousand levels: 2 KB of ``[``)
is refused as such: Python's parser raises RecursionError, which is not a ValueError, and a
route that caught only ValueError answered it with a 500.
"""

import json


class Malformed(ValueError):
    """A body that cannot be read as the JSON object a route takes; the message says why, as a
    phrase that follows "the body" ("is not valid JSON")."""


class RepeatedKey(Malformed):
    """A JSON object names a key twice; ``key`` is the first one repeated."""

    def __init__(self, key):
        super().__init__(f'repeats the key "{key[:40]}"')
        self.key = key


class TooDeep(Malformed):
    def __init__(self):
        super().__init__("is nested too deeply (lists and objects within each other, about 1,000 levels)")


def _unique(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise RepeatedKey(key)
        seen[key] = value
    return seen


def loads(text):
    """``json.loads`` that raises RepeatedKey for an object with a repeated key, at any depth, and
    TooDeep (a ValueError too) for a body nested deeper than the interpreter recurses."""
    try:
        return json.loads(text, object_pairs_hook=_unique)
    except RecursionError:
        raise TooDeep() from None


def loads_object(raw):
    """The bytes of a request body as a JSON object (a dict); Malformed names what is wrong."""
    if not raw:
        raise Malformed("is empty")
    try:
        payload = loads(raw.decode("utf-8"))
    except Malformed:
        raise
    except (ValueError, UnicodeDecodeError):
        raise Malformed("is not valid JSON") from None
    if not isinstance(payload, dict):
        raise Malformed("must be a JSON object")
    return payload
