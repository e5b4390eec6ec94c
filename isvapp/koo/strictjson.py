"""JSON as signed requests must be read: a key given twice in one object is refused.

Which of two values a reader keeps is the reader's choice (Python's json keeps the last, a regex
over the raw bytes finds the first), so a body holding a key twice can be verified under one
reading and acted on under the other: a fresh "timeStamp" put in front of a 30-day-old signed
G1 Kit body passed the window that way. No honest sender repeats a key; refusing the body is
the only reading with one meaning.
"""

import json


class RepeatedKey(ValueError):
    """A JSON object names a key twice; ``key`` is the first one repeated."""

    def __init__(self, key):
        super().__init__(f'repeats the key "{key[:40]}"')
        self.key = key


def _unique(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise RepeatedKey(key)
        seen[key] = value
    return seen


def loads(text):
    """``json.loads`` that raises RepeatedKey for an object with a repeated key, at any depth."""
    return json.loads(text, object_pairs_hook=_unique)
