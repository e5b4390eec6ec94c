"""The answer as explicit bytes.

The bytes built here are what is signed (Body-Sign), what is stored for replay and what is sent:
building them once and never re-serialising is what makes a replay byte-identical and keeps the
signature valid in debug and production alike (``jsonify`` indents differently in debug).
"""

import json

from .codes import MESSAGES, RESULT_MSG_MAX, SUCCESS

# Made once: json.dumps with any argument builds a new encoder per call (profiled on every answer).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(obj):
    """Compact, raw UTF-8 JSON, keys in the order given: the one serialisation used for answers."""
    return _ENCODER.encode(obj).encode("utf-8")


def envelope(code=SUCCESS, message=None, **fields):
    """``resultCode`` and ``resultMsg`` first, then the fields in the order given; None fields dropped."""
    body = {"resultCode": code, "resultMsg": (message or MESSAGES.get(code, ""))[:RESULT_MSG_MAX]}
    body.update((k, v) for k, v in fields.items() if v is not None)
    return dumps(body)


def result_code(body):
    """The resultCode of an answer's bytes, or None when they are not an envelope."""
    try:
        return json.loads(body).get("resultCode")
    except (ValueError, AttributeError):
        return None
