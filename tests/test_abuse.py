"""A stranger's requests against a real gunicorn on loopback: cheap to refuse, never replayable.

Every loop here is bounded and talks only to 127.0.0.1. The figures asserted are the issue's
targets; BENCHMARKS.md records the measured ones (bench/abuse.py).
"""

import json
import re
import threading
import time
from urllib.parse import urlencode

import pytest
import requests
from bench.abuse import MIB, peak_rss_mib, send_flood, tiny_objects, worker_pids
from isvapp.koo import codes
from isvapp.koo.signing import g1_auth_token, g1_signed_params, g2_signed_request

from .helpers import KEY, KIT_KEY, new_order
from .live import LiveServer
from .tiers import live_fixture


@live_fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("abuse")
    env = {
        "ISVAPP_KOO_ACCESS_KEY": KEY,
        "ISVAPP_KOO_KIT_ACCESS_KEY": KIT_KEY,
        "ISVAPP_ACCESS_LOG": str(folder / "access.log"),
    }
    with LiveServer(folder, workers=2, env=env) as live:
        yield live


def test_huge_unsigned_bodies_cost_little_memory_and_time(server):
    body = tiny_objects(12 * MIB)
    targets = ["/produce", "/produce/produceAPI/v2/allOrgSync", "/produce/produceAPI/allOrgSync"]
    for path in targets:
        for _ in range(2):
            started = time.monotonic()
            response = requests.post(
                server.url + path + "?signature=00&timestamp=1&nonce=n",
                data=body,
                headers={
                    "Content-Type": "application/json",
                    "x-sign": "00",
                    "x-timestamp": str(int(time.time() * 1000)),
                    "x-nonce": "n",
                    "authToken": "AAAA",
                },
                timeout=10,
            )
            elapsed = time.monotonic() - started
            answer = json.loads(response.content)
            assert response.status_code == 200 and answer["resultCode"] in (codes.AUTH_FAILED, codes.INVALID_PARAM)
            assert elapsed < 3.0, (path, elapsed)
    peaks = [peak_rss_mib(pid) for pid in worker_pids(server.proc.pid)]
    assert peaks and max(peaks) < 300, peaks


def test_a_signed_call_is_answered_in_time_while_strangers_send_huge_bodies(server):
    body = tiny_objects(12 * MIB)
    stop = time.monotonic() + 6

    def stranger():
        while time.monotonic() < stop:
            requests.post(
                server.url + "/produce/produceAPI/v2/allOrgSync",
                data=body,
                timeout=10,
                headers={"x-sign": "00", "x-timestamp": str(int(time.time() * 1000)), "x-nonce": "n"},
            )

    threads = [threading.Thread(target=stranger) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        slowest = 0.0
        for n in range(5):
            raw, query = g2_signed_request(KEY, new_order(order=f"BUSY{n}"))
            started = time.monotonic()
            response = requests.post(
                server.url + "/produce",
                params=query,
                data=raw,
                timeout=10,
                headers={"Content-Type": "application/json"},
            )
            slowest = max(slowest, time.monotonic() - started)
            assert json.loads(response.content)["resultCode"] == codes.SUCCESS
    finally:
        for thread in threads:
            thread.join(15)
    assert slowest < 3.0


@pytest.mark.sqlite_only
def test_unsigned_requests_barely_grow_the_database(server):
    files = [server.instance_path / name for name in ("isvapp.sqlite", "isvapp.sqlite-wal")]
    size = lambda: sum(f.stat().st_size for f in files if f.exists())  # noqa: E731
    before = size()
    body = json.dumps({"activity": "newInstance", "pad": "x" * 60_000}).encode()
    for _ in range(400):
        requests.post(
            server.url + "/produce?signature=00&timestamp=1&nonce=n",
            data=body,
            timeout=10,
            headers={"Content-Type": "application/json"},
        )
    time.sleep(0.5)  # log rows are written after each answer
    grown = size() - before
    assert grown < 8 * MIB, grown
    engine = server.engine()
    try:
        with engine.connect() as conn:
            from sqlalchemy import text

            logged = conn.execute(text("SELECT count(*) FROM callbacks WHERE result_code = '000001'")).scalar_one()
            longest = conn.execute(text("SELECT max(length(request)) FROM callbacks")).scalar_one()
            noted = conn.execute(
                text("SELECT count(*) FROM callbacks WHERE note LIKE '%were not logged%'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert logged < 400 and longest < 2000
    assert logged <= 2 * 20 * 2 + 2 or noted >= 1  # 20 a minute per worker; the rest counted


@pytest.mark.live
def test_refused_requests_from_many_addresses_are_bounded_by_the_global_budget(tmp_path):
    """600 refused ~5 KB requests (4 KB query string), each from an address of its own, into 2 workers:
    the per-address budget never drops one; the global budget (120 a minute, in the database, shared
    by both workers) bounds the rows, each row keeps a prefix of the query string, the rest are counted."""
    from sqlalchemy import text

    count, limit = 600, 120
    env = {"ISVAPP_KOO_ACCESS_KEY": KEY, "ISVAPP_PROXY_FIX_HOPS": "1"}
    with LiveServer(tmp_path, workers=2, env=env) as live:
        send_flood(live.url, count)
        engine = live.engine()
        try:
            deadline = time.monotonic() + 20  # rows and counts are written after each answer
            while True:
                with engine.connect() as conn:
                    rows, longest, noted_total, pending = _flood_figures(conn, text)
                if rows + noted_total + pending >= count or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            cut = conn_value(engine, text("SELECT count(*) FROM callbacks WHERE request LIKE '%query_cut%'"))
        finally:
            engine.dispose()
    assert 0 < rows <= 2 * limit, rows  # one minute's budget, or two if the flood crossed a minute
    assert longest < 1500, longest  # 256 bytes of query string, 512 of body, not the 4 KB sent
    assert cut == rows
    assert rows + noted_total + pending == count, (rows, noted_total, pending)  # every dropped one counted


def _flood_figures(conn, text):
    rows = conn.execute(text("SELECT count(*) FROM callbacks")).scalar_one()
    longest = conn.execute(text("SELECT coalesce(max(length(request)), 0) FROM callbacks")).scalar_one()
    notes = conn.execute(text("SELECT note FROM callbacks WHERE note IS NOT NULL")).scalars().all()
    noted = sum(int(n) for note in notes for n in re.findall(r"(\d+) earlier refused requests", note))
    value = conn.execute(text("SELECT value FROM status_items WHERE name = 'callback_refused_budget'")).scalar()
    value = json.loads(value) if isinstance(value, str) else (value or {})
    return rows, longest, noted, value.get("dropped", 0)


def conn_value(engine, statement):
    with engine.connect() as conn:
        return conn.execute(statement).scalar_one()


def test_an_ipv6_client_is_budgeted_by_its_64():
    from isvapp.domain.callbacklog import RefusedBudget, address_key

    assert address_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("203.0.113.7") == "203.0.113.7" and address_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert address_key("not an address") == "not an address" and address_key("") == ""
    budget = RefusedBudget(3)
    admitted = [budget.admit(address_key(f"2001:db8:1:2::{n:x}"), now=60)[0] for n in range(10)]
    assert admitted == [True] * 3 + [False] * 7  # ten addresses of one /64: one budget
    assert budget.admit(address_key("2001:db8:1:3::1"), now=60) == (True, 0)  # the next /64: its own
    assert budget.admit(address_key("2001:db8:1:2::ffff"), now=120) == (True, 7)  # a minute later: counted


def test_recut_nonce_and_timestamp_is_refused(server):
    nonce = "a1b2c3d4e5f60"
    raw, query = g2_signed_request(
        KEY,
        {"activity": "newInstance", "orderId": "RECUT", "orderLineId": "RECUT-1", "businessId": "recut-1"},
        nonce=nonce,
    )
    post = lambda q: json.loads(
        requests.post(
            server.url + "/produce",
            params=q,
            data=raw,
            timeout=10,  # noqa: E731
            headers={"Content-Type": "application/json"},
        ).content
    )
    assert post(query)["resultCode"] == codes.SUCCESS
    assert post(query)["resultCode"] == codes.SUCCESS  # identical resend: the first answer
    recut = {**query, "nonce": nonce[:-1], "timestamp": "0" + query["timestamp"]}
    assert post(recut)["resultCode"] == codes.INVALID_PARAM
    supers = {**query, "timestamp": query["timestamp"].translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))}
    assert post(supers)["resultCode"] == codes.INVALID_PARAM


def test_g1_freeze_signed_in_2020_is_not_obeyed(server):
    params = {
        "activity": "instanceStatus",
        "instanceId": "i-2020",
        "instanceStatus": "FREEZE",
        "timeStamp": "20200727073711903",
    }
    params["authToken"] = g1_auth_token(KEY, params)
    answer = json.loads(requests.get(server.url + "/produce?" + urlencode(params), timeout=10).content)
    assert answer["resultCode"] == codes.INVALID_PARAM and "window" in answer["resultMsg"]


def test_g1_resplit_parameters_create_nothing(server):
    order = {
        "activity": "newInstance",
        "businessId": "split-1",
        "customerId": "c",
        "orderId": "SPLIT",
        "productId": "p",
        "periodNumber": "1",
        "expireTime": "20301231235959",
    }
    signed = g1_signed_params(KEY, order)
    first = json.loads(requests.get(server.url + "/produce?" + urlencode(signed), timeout=10).content)
    assert first["resultCode"] == codes.SUCCESS
    again = json.loads(requests.get(server.url + "/produce?" + urlencode(signed), timeout=10).content)
    assert again == first  # the marketplace's retry: the stored answer, credentials and all
    resplit = {k: v for k, v in signed.items() if k != "periodNumber"}
    resplit["orderId"] = "SPLIT&periodNumber=1"
    attack = json.loads(requests.get(server.url + "/produce?" + urlencode(resplit), timeout=10).content)
    assert attack["resultCode"] == codes.AUTH_FAILED


def test_deeply_nested_json_is_answered_and_logged(server):
    deep = b'{"activity":"newInstance","x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    raw, query = g2_signed_request(KEY, deep)
    answer = json.loads(
        requests.post(
            server.url + "/produce", params=query, data=raw, timeout=10, headers={"Content-Type": "application/json"}
        ).content
    )
    assert answer["resultCode"] == codes.INVALID_PARAM and "nested" in answer["resultMsg"]
    time.sleep(0.3)
    engine = server.engine()
    try:
        with engine.connect() as conn:
            from sqlalchemy import text

            rows = conn.execute(text("SELECT count(*) FROM callbacks WHERE result_msg LIKE '%nested%'")).scalar_one()
    finally:
        engine.dispose()
    assert rows == 1


def test_access_log_never_records_query_strings(server):
    params = g1_signed_params(KEY, {"activity": "queryInstance", "instanceId": "x"})
    requests.get(server.url + "/produce?" + urlencode(params), timeout=10)
    raw, query = g2_signed_request(KEY, new_order(order="LOGGED"))
    requests.post(
        server.url + "/produce", params=query, data=raw, timeout=10, headers={"Content-Type": "application/json"}
    )
    time.sleep(0.3)
    log = (server.instance_path / "access.log").read_text()
    assert '"GET /produce HTTP/1.1" 200' in log and '"POST /produce HTTP/1.1" 200' in log
    assert "authToken" not in log and "signature" not in log and query["nonce"] not in log


@pytest.mark.any_database  # it refuses before it opens the database
@pytest.mark.live
@pytest.mark.parametrize("secret", [None, "change-me", "short-secret"])
def test_gunicorn_refuses_to_start_with_a_weak_secret_key(tmp_path, secret):
    env = {"ISVAPP_KOO_ACCESS_KEY": KEY, "ISVAPP_SECRET_KEY": secret or ""}
    server = LiveServer(tmp_path, workers=1, env=env)
    with pytest.raises(RuntimeError) as error:
        server.start(timeout=20)
    assert "SECRET_KEY" in str(error.value) and "init-config" in str(error.value)
