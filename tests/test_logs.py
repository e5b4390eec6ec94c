"""Structured logs (LOG_FORMAT = "json") and the request id: one JSON object per line from every
process, the request id in the answer, its log lines and its callback row, and never a signature
or a query string."""

import json
import logging
import re
import sys
import time

import pytest
import requests
from isvapp import logs
from isvapp.koo.signing import g2_signed_request
from isvapp.storage.models import Callback
from sqlalchemy import select

from .helpers import KEY, tagged_order
from .live import LiveServer

FIELDS = {"time", "level", "logger", "message"}


# --- the formatter --------------------------------------------------------------------------------


def record(message, *args, name="isvapp.test", exc_info=None):
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, exc_info)


def test_a_line_is_one_json_object_without_query_strings_or_signatures():
    try:
        raise ValueError("bad authToken=abc123 in GET /produce?activity=x")
    except ValueError:
        failure = sys.exc_info()
    line = logs.JsonFormatter().format(
        record("Error handling request %s", "/produce?signature=deadbeef&nonce=n1", exc_info=failure)
    )
    entry = json.loads(line)
    assert "\n" not in line and FIELDS <= set(entry) and entry["level"] == "WARNING"
    assert entry["message"] == "Error handling request /produce"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    assert "ValueError" in entry["exception"]
    for secret in ("deadbeef", "abc123", "activity=x", "?"):
        assert secret not in line


def test_gunicorns_access_line_brings_its_fields_and_the_request_id():
    atoms = {"h": "127.0.0.1", "m": "POST", "U": "/produce", "s": "200", "L": "0.012", "{x-request-id}o": "rid-1"}
    entry = json.loads(logs.JsonFormatter().format(record('%(m)s %(U)s" %(s)s', atoms, name="gunicorn.access")))
    assert entry["message"] == 'POST /produce" 200'
    assert (entry["method"], entry["path"], entry["status"], entry["duration_s"], entry["request_id"]) == (
        "POST",
        "/produce",
        "200",
        0.012,
        "rid-1",
    )


# --- the request id -------------------------------------------------------------------------------


def test_a_sane_request_id_is_kept_and_anything_else_replaced(client, market):
    assert client.get("/healthz", headers={"X-Request-Id": "lb-42.a_b"}).headers["X-Request-Id"] == "lb-42.a_b"
    for insane in ("x" * 65, "has space", "semi;colon", "é"):
        given = client.get("/healthz", headers={"X-Request-Id": insane}).headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{16}", given), insane
    first, second = client.get("/healthz"), client.get("/healthz")
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]


def test_the_callback_row_has_the_answers_request_id(market):
    raw, query = g2_signed_request(KEY, tagged_order("row"))
    answer = market.send(
        "POST",
        "/produce",
        query_string=query,
        data=raw,
        content_type="application/json",
        headers={"X-Request-Id": "mkt-7"},
    )
    generated = market.g2(tagged_order("gen")).headers["X-Request-Id"]
    assert answer.headers["X-Request-Id"] == "mkt-7"
    assert sorted(row.request_id for row in market.rows(Callback)) == sorted(["mkt-7", generated])


# --- every process, in JSON ------------------------------------------------------------------------


def json_lines(text, where):
    entries = []
    for line in text.splitlines():
        if line.strip():
            entry = json.loads(line)  # raises on any line that is not one JSON object
            assert FIELDS <= set(entry), (where, line)
            entries.append(entry)
    return entries


@pytest.mark.live
def test_gunicorn_the_app_and_the_worker_write_json_lines_with_the_request_id(tmp_path):
    env = {
        "ISVAPP_KOO_ACCESS_KEY": KEY,
        "ISVAPP_LOG_FORMAT": "json",
        "ISVAPP_ACCESS_LOG": "-",
        "ISVAPP_WORKERS": "2",
    }
    server = LiveServer(tmp_path / "instance", env=env)
    secrets = []
    with server:
        raw, query = g2_signed_request(KEY, tagged_order("live"))
        secrets += [query["signature"], query["nonce"]]
        answer = requests.post(
            server.url + "/produce",
            params=query,
            data=raw,
            headers={"Content-Type": "application/json", "X-Request-Id": "live-1"},
            timeout=30,
        )
        assert answer.headers["X-Request-Id"] == "live-1" and json.loads(answer.content)["resultCode"] == "000000"
        # a request with a stale timestamp: the app logs a warning about the clock, while serving it
        stale_raw, stale_query = g2_signed_request(
            KEY, tagged_order("stale"), timestamp=int(time.time() * 1000) - 3_600_000
        )
        secrets += [stale_query["signature"], stale_query["nonce"]]
        stale = requests.post(
            server.url + "/produce",
            params=stale_query,
            data=stale_raw,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        stale_id = stale.headers["X-Request-Id"]
        worker = server.flask("worker", "--until-idle")
        engine = server.engine()
        try:
            with engine.connect() as connection:
                logged = dict(connection.execute(select(Callback.request_id, Callback.result_code)).all())
        finally:
            engine.dispose()
    assert logged == {"live-1": "000000", stale_id: "000002"}
    served = json_lines((server.instance_path / "gunicorn.log").read_text(), "gunicorn")
    loggers = {entry["logger"] for entry in served}
    assert {"gunicorn.error", "gunicorn.access", "isvapp.produce"} <= loggers, loggers
    [access] = [e for e in served if e["logger"] == "gunicorn.access" and e.get("request_id") == "live-1"]
    assert access["path"] == "/produce" and access["method"] == "POST" and access["status"] == "200"
    [clock] = [e for e in served if e["logger"] == "isvapp.produce"]
    assert clock["request_id"] == stale_id and "clock" in clock["message"] and clock["level"] == "WARNING"
    assert [e for e in served if e["logger"] == "gunicorn.access" and e.get("request_id") == stale_id]
    ran = json_lines(worker.stderr, "worker")
    assert any(e["logger"] == "isvapp.jobs" and "started" in e["message"] for e in ran)
    everything = (server.instance_path / "gunicorn.log").read_text() + worker.stderr
    for secret in secrets + ["signature=", "nonce=", "?"]:
        assert secret not in everything, secret
