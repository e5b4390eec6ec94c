"""Log lines as JSON objects, on request (LOG_FORMAT = "json"), for a log service that reads
fields (Huawei Cloud's LTS) rather than patterns. Plain text stays the default.

One object per line: ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``,
``message``, ``pid``, and, for a line logged while a request is served, its ``request_id`` (the
X-Request-Id its answer carries: isvapp/monitoring.py); an exception's traceback is in
``exception``. gunicorn's access lines add ``method``, ``path``, ``status``, ``duration_s`` and
``remote_addr`` from gunicorn's own fields, and the request id from the answer's header.

Never a query string: G1's authToken and G2's signature travel there. Every text written is
cleaned first: a query string after a path is dropped, and a secret-named parameter
(``signature=``, ``authToken=`` ...) anywhere is masked, whoever logged it (gunicorn names the
full URL of a request that broke it).

Who installs it: gunicorn.conf.py for gunicorn's own logs and, before its workers start, for the
app's (ISVAPP_LOG_FORMAT); create_app for any other process (``isvapp worker``).
"""

import json
import logging
import re
import sys
from datetime import UTC, datetime

from flask import g, has_request_context

_QUERY = re.compile(r"(/[^\s?\"'<>]*)\?[^\s\"'<>]*")
_SECRET_PARAMETER = re.compile(
    r"(?i)\b(signature|authtoken|x-sign|token|access_token|refresh_token|password|secret|sign|key|code)=[^&\s\"'<>]*"
)
MASK = "***"


def clean(text):
    """``text`` without query strings after paths, and with secret-named parameters masked."""
    if "?" in text:
        text = _QUERY.sub(r"\1", text)
    if "=" in text:
        text = _SECRET_PARAMETER.sub(lambda m: m.group(1) + "=" + MASK, text)
    return text


def _access_fields(atoms):
    """What gunicorn's access line knows, as fields (``atoms``: gunicorn's, a dict)."""
    fields = {
        "method": atoms.get("m"),
        "path": atoms.get("U"),
        "status": atoms.get("s"),
        "remote_addr": atoms.get("h"),
        "request_id": atoms.get("{x-request-id}o"),
    }
    try:
        fields["duration_s"] = float(atoms.get("L"))
    except (TypeError, ValueError):
        pass
    return {k: v for k, v in fields.items() if v not in (None, "-")}


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON."""

    def format(self, record):
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": clean(record.getMessage()),
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None)
        if request_id is None and has_request_context():
            request_id = g.get("request_id")
        if request_id:
            entry["request_id"] = request_id
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            entry.update(_access_fields(record.args))
        if record.exc_info:
            entry["exception"] = clean(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = clean(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class JsonHandler(logging.StreamHandler):
    """The root logger's handler in JSON mode (a class of its own, so it is installed once)."""

    def __init__(self, stream=None):
        super().__init__(stream or sys.stderr)
        self.setFormatter(JsonFormatter())


def use_json(level=None):
    """Every logger's lines as JSON on stderr, through one handler on the root logger; once per
    process. isvapp's own loggers log from ``level`` (ISVAPP_LOG_LEVEL, gunicorn's setting), other
    libraries keep their defaults (warnings). Loggers with handlers of their own (gunicorn's) are
    given the formatter by their owner."""
    root = logging.getLogger()
    if not any(isinstance(handler, JsonHandler) for handler in root.handlers):
        root.addHandler(JsonHandler())
    own = logging.getLogger("isvapp")
    if level and own.level == logging.NOTSET:
        try:
            own.setLevel(str(level).upper())
        except ValueError:
            own.setLevel(logging.INFO)


def wants_json(value):
    return str(value or "").strip().lower() == "json"
