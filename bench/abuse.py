"""What a stranger's requests cost isvapp under gunicorn (issue: unauthenticated abuse).

Measured against a real gunicorn on 127.0.0.1, each next to its baseline in the same run:
- worker peak resident memory (VmHWM) idle, then after 12 MiB unsigned bodies of tiny JSON
  objects to /produce and to both Kit routes (the worst shape for a JSON parser), and the time
  each answer took;
- a signed newInstance's latency alone, then while four senders post 12 MiB bodies;
- database growth from 400 unsigned 60 KB requests (file plus WAL);
- database growth from unsigned 5 KB requests (a ~4 KB query string, the longest request line
  gunicorn takes, and a 1 KB body), each from an address of its own (X-Forwarded-For through
  PROXY_FIX_HOPS=1): the budget for all addresses together, not the per-address one, bounds it.

``python -m bench.abuse`` runs only that last scenario (3,000 requests) and prints its figures.
"""

import json
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from isvapp.koo.signing import g2_signed_request

MIB = 1024 * 1024
KEY = "bench-abuse-key"


def tiny_objects(size):
    return b"[" + b",".join([b"{}"] * (size // 3)) + b"]"


def worker_pids(master_pid):
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master_pid:
                pids.append(int(entry.name))
    return pids


def peak_rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _signed_ms(url, n):
    raw, query = g2_signed_request(
        KEY,
        {
            "activity": "newInstance",
            "orderId": f"AB{n}",
            "orderLineId": f"AB{n}-1",
            "businessId": uuid.uuid4().hex,
            "testFlag": "1",
        },
    )
    started = time.monotonic()
    requests.post(url + "/produce", params=query, data=raw, headers={"Content-Type": "application/json"}, timeout=10)
    return (time.monotonic() - started) * 1000


def measure(quick, live_server):
    size = (1 if quick else 12) * MIB
    unsigned = 40 if quick else 400
    with (
        tempfile.TemporaryDirectory() as folder,
        live_server(Path(folder), workers=2, env={"ISVAPP_KOO_ACCESS_KEY": KEY}) as server,
    ):
        pids = worker_pids(server.proc.pid)
        result = {"body_mib": size / MIB, "idle_peak_mib": max(peak_rss_mib(p) for p in pids), "answers_s": {}}
        result["signed_alone_ms"] = max(_signed_ms(server.url, n) for n in range(5))
        before = _stored(server)  # first: the refused-request log budget of this minute is fresh
        pad = json.dumps({"activity": "newInstance", "pad": "x" * 60_000}).encode()
        for _ in range(unsigned):
            requests.post(
                server.url + "/produce?signature=00&timestamp=1&nonce=n",
                data=pad,
                timeout=10,
                headers={"Content-Type": "application/json"},
            )
        time.sleep(0.5)
        after = _stored(server)
        result["unsigned_requests"] = unsigned
        result["db_growth_mib"] = (after["bytes"] - before["bytes"]) / MIB
        result["rows_logged"] = after["rows"] - before["rows"]
        body = tiny_objects(size)
        headers = {"x-sign": "00", "x-nonce": "n", "authToken": "AAAA", "Content-Type": "application/json"}
        for path in ("/produce", "/produce/produceAPI/v2/allOrgSync", "/produce/produceAPI/allOrgSync"):
            headers["x-timestamp"] = str(int(time.time() * 1000))
            started = time.monotonic()
            requests.post(
                server.url + path + "?signature=00&timestamp=1&nonce=n", data=body, headers=headers, timeout=30
            )
            result["answers_s"][path] = time.monotonic() - started
        result["abused_peak_mib"] = max(peak_rss_mib(p) for p in pids)
        stop = time.monotonic() + (2 if quick else 6)

        def stranger():
            while time.monotonic() < stop:
                requests.post(
                    server.url + "/produce/produceAPI/v2/allOrgSync",
                    data=body,
                    timeout=30,
                    headers={**headers, "x-timestamp": str(int(time.time() * 1000))},
                )

        threads = [threading.Thread(target=stranger) for _ in range(4)]
        for thread in threads:
            thread.start()
        result["signed_under_abuse_ms"] = max(_signed_ms(server.url, 100 + n) for n in range(5))
        for thread in threads:
            thread.join(60)
    result["flood"] = flood(300 if quick else 3000, live_server)
    return result


FLOOD_QUERY = 4000  # bytes of query string: gunicorn refuses a request line over 4094 (limit_request_line)


def flood_query(n):
    """A ~4 KB query string of short parameters: stored whole as parsed JSON it would be ~4.9 KB."""
    query, i = f"signature=00&timestamp=1&nonce=n{n}", 0
    while len(query) < FLOOD_QUERY - 12:
        query += f"&p{i}=v{i}"
        i += 1
    return query


def flood_address(n):
    """A different client address for each request: IPv4 only, so the /64 grouping plays no part."""
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def send_flood(url, count, threads=8):
    """``count`` unsigned ~5 KB requests to /produce, request n from flood_address(n); seconds taken."""
    body = json.dumps({"activity": "newInstance", "pad": "x" * 1000}).encode()
    local = threading.local()

    def one(n):
        local.session = getattr(local, "session", None) or requests.Session()
        local.session.post(
            f"{url}/produce?{flood_query(n)}",
            data=body,
            timeout=10,
            headers={"Content-Type": "application/json", "X-Forwarded-For": flood_address(n)},
        )

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    return time.monotonic() - started


def flood(count, live_server):
    """Database growth from ``count`` unsigned 5 KB requests from ``count`` addresses (2 workers)."""
    with (
        tempfile.TemporaryDirectory() as folder,
        live_server(
            Path(folder), workers=2, env={"ISVAPP_KOO_ACCESS_KEY": KEY, "ISVAPP_PROXY_FIX_HOPS": "1"}
        ) as server,
    ):
        before = _stored(server)
        seconds = send_flood(server.url, count)
        time.sleep(1.0)  # log rows are written after each answer
        after = _stored(server)
        longest = _longest_request(server)
    return {
        "requests": count,
        "sent_mib": count * (FLOOD_QUERY + 1030) / MIB,
        "seconds": seconds,
        "db_growth_mib": (after["bytes"] - before["bytes"]) / MIB,
        "rows_logged": after["rows"] - before["rows"],
        "longest_request_chars": longest,
    }


def _longest_request(server):
    engine = server.engine()
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT coalesce(max(length(request)), 0) FROM callbacks").scalar()
    finally:
        engine.dispose()


def _stored(server):
    """The database's size (SQLite: pages in use once the WAL is folded in), and the callback rows in it."""
    engine = server.engine()
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                pages = (
                    conn.exec_driver_sql("PRAGMA page_count").scalar()
                    - conn.exec_driver_sql("PRAGMA freelist_count").scalar()
                )
                size = pages * conn.exec_driver_sql("PRAGMA page_size").scalar()
            else:
                size = conn.exec_driver_sql("SELECT pg_total_relation_size('callbacks')").scalar()
            rows = conn.exec_driver_sql("SELECT count(*) FROM callbacks").scalar()
    finally:
        engine.dispose()
    return {"bytes": size, "rows": rows}


def render(r):
    answers = ", ".join(f"`{path}` {seconds:.2f} s" for path, seconds in r["answers_s"].items())
    return [
        "## 7. Unauthenticated abuse",
        "",
        "`bench/abuse.py`: a real gunicorn (2 workers) on loopback; unsigned requests, each figure next to its "
        "baseline from the same run.",
        "",
        "| | baseline | under abuse | target |",
        "| --- | --- | --- | --- |",
        f"| worker peak memory (VmHWM), {r['body_mib']:.0f} MiB bodies of tiny JSON objects | "
        f"{r['idle_peak_mib']:.0f} MiB idle | {r['abused_peak_mib']:.0f} MiB | < 300 MiB |",
        f"| slowest of 5 signed newInstance | {r['signed_alone_ms']:.0f} ms alone | "
        f"{r['signed_under_abuse_ms']:.0f} ms with 4 senders of {r['body_mib']:.0f} MiB bodies | < 3 s |",
        f"| database growth (pages in use), {r['unsigned_requests']} unsigned 60 KB requests | "
        f"{r['unsigned_requests'] * 60_000 / MIB:.1f} MiB sent | {r['db_growth_mib']:.2f} MiB, "
        f"{r['rows_logged']} rows logged (the rest counted) | < 8 MB |",
        flood_row(r["flood"]),
        "",
        f"Answer times for one {r['body_mib']:.0f} MiB unsigned body: {answers} (target < 3 s).",
        "",
    ]


def flood_row(f):
    return (
        f"| database growth (pages in use), {f['requests']:,} unsigned 5 KB requests (4 KB query string, 1 KB body) "
        f"from {f['requests']:,} addresses | {f['sent_mib']:.1f} MiB sent in {f['seconds']:.1f} s | "
        f"{f['db_growth_mib']:.2f} MiB, {f['rows_logged']} rows logged (the rest counted), longest request "
        f"text {f['longest_request_chars']} characters | < 8 MB |"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.live import LiveServer

    figures = flood(int(sys.argv[1]) if len(sys.argv) > 1 else 3000, LiveServer)
    print(json.dumps(figures, indent=1))
    print(flood_row(figures))
