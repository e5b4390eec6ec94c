"""newInstance as the tables grow: isvapp and the limit app with 0, 100,000 and 1,000,000 orders stored.

A merchant's tables only grow (instances, answers, events and jobs are never pruned), so the
headline's empty-table figure flatters. Here each size is measured the way the headline is
(signed requests replayed by wrk against gunicorn, the helpers of ``bench/__main__.py``), beside
the limit app (bench/limit.py) holding the same number of rows in its own tables, in alternating
runs of the same minute.

Pre-fill, outside the timing:
- the shape of an order is copied from a real one: a child process makes the schema (isvapp's
  ``init_db``; the limit app's own CREATE TABLEs) and sends one signed newInstance through the
  Flask test client; every row it left (isvapp: instances, answers, events, jobs, signed_requests,
  callbacks; limit: nonces, orders) is read back and becomes a template, then deleted;
- a generated table of per-order values (order id, timestamp, one fresh identifier per identifier
  the template holds: businessId, event id, nonce, token, digests) is made with executemany, and
  each table is filled with one ``INSERT ... SELECT`` from it, the template's values with those
  identifiers and timestamps replaced (``replace()``), in SQLite directly, not the request path.
  Jobs are stored done, as a processed order leaves them. Orders are spread over the year before
  now; identifiers are random (uuid4-like) where the template's are, time-ordered (version 7, with
  the order's millisecond) where the template's are (isvapp's event ids), and all time-ordered for
  the limit app's time-ordered variant (a 48-bit millisecond timestamp and random bits);
- the tables the app prunes hold only what its pruning keeps (``KEPT_S``): replay entries of the
  last day (the prune job runs every PRUNE_EVERY_H; an entry is kept 2 x the window + the clock
  margin), for isvapp's signed_requests and the limit app's nonces alike, and callback log rows of
  the last CALLBACK_LOG_RETENTION_DAYS (90) and a day; the other tables keep every order;
- the file is filled once up to each size in turn and copied at each size; every run gets its own
  copy, so runs do not grow each other's tables.

Time-ordered keys: isvapp makes its event ids time-ordered (lifecycle.time_ordered_id) but stores
the marketplace's businessId as the instance id and its nonces as they come, so the effect of key
order is also measured on the limit app alone: the same app at each size with the nonce (its
PRIMARY KEY, sent by the client) random vs time-ordered, in the pre-filled rows and in the
requests. That isolates what one index on random keys costs as it grows.

    python -m bench --only tables [--quick]
"""

import json
import os
import re
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_ORDER = "BTPL000001"
YEAR_MS = 365 * 86400 * 1000
HEX = re.compile(r"[0-9a-f]{24,}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DATETIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?")
FILL_TIMES = {}  # seconds per table, for looking into a slow pre-fill
APPS = {"isvapp": ("wsgi:app", "isvapp.sqlite"), "limit": ("bench.limit:app", "limit.sqlite")}


def _kept_s():
    """{table: seconds of rows kept} for the tables the app prunes: a merchant's database never holds
    more of them. isvapp's prune job (every PRUNE_EVERY_H) deletes replay entries that can no longer
    pass their window and callback log rows older than CALLBACK_LOG_RETENTION_DAYS; the limit app's
    nonces are replay entries too, kept as long as isvapp keeps its own (the same rule for both)."""
    from isvapp.background.maintenance import replay_keep_s
    from isvapp.config import DEFAULTS

    every_s = float(DEFAULTS["PRUNE_EVERY_H"]) * 3600
    replays = every_s + replay_keep_s(int(DEFAULTS["KOO_SIGNATURE_WINDOW_S"]))
    return {
        "signed_requests": replays,
        "nonces": replays,
        "callbacks": every_s + int(DEFAULTS["CALLBACK_LOG_RETENTION_DAYS"]) * 86400,
    }


KEPT_S = _kept_s()


# --- the shape of one real order ---------------------------------------------------------------


def _one_order(kind, folder, key):
    """In this (child) process: the schema and one signed newInstance through the test client."""
    from isvapp.koo.signing import g2_signed_request

    body = {
        "activity": "newInstance",
        "orderId": TEMPLATE_ORDER,
        "orderLineId": f"{TEMPLATE_ORDER}-1",
        "businessId": uuid.uuid4().hex,
        "testFlag": "1",
    }
    raw, query = g2_signed_request(key, body)
    if kind == "isvapp":
        from isvapp import create_app
        from isvapp.storage.schema import init_db

        app = create_app({"TESTING": False, "INSTANCE_PATH": folder, "SECRET_KEY": "bench", "KOO_ACCESS_KEY": key})
        with app.app_context():
            init_db()
    else:
        os.environ["ISVAPP_INSTANCE_PATH"], os.environ["ISVAPP_KOO_ACCESS_KEY"] = folder, key
        from bench.limit import app
    answer = json.loads(
        app.test_client().post("/produce", query_string=query, data=raw, content_type="application/json").get_data()
    )
    assert answer["resultCode"] == "000000", answer


def template(kind, folder, key):
    """(database file holding the empty schema, {table: (columns, rows)} one real order wrote)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "bench.tables", "one-order", kind, str(folder), key],
        cwd=ROOT,
        check=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    path = folder / APPS[kind][1]
    conn = sqlite3.connect(path, isolation_level=None)
    rows = {}
    for (table,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'alembic_version'"
    ).fetchall():
        cursor = conn.execute(f'SELECT * FROM "{table}"')
        found = cursor.fetchall()
        if found:
            rows[table] = ([d[0] for d in cursor.description], found)
            conn.execute(f'DELETE FROM "{table}"')
    conn.execute("VACUUM")
    conn.close()
    return path, rows


# --- bulk fill ------------------------------------------------------------------------------------


def _identifiers(rows):
    """Every identifier the template holds, as {literal: format} (format: hex length, 'uuid', or
    'uuid7' for a time-ordered one, such as isvapp's event ids)."""
    found = {}
    for _, table_rows in rows.values():
        for row in table_rows:
            for value in row:
                text = value.decode() if isinstance(value, bytes) else value
                if isinstance(text, str):
                    for match in UUID.findall(text):
                        found[match] = "uuid7" if match[14] == "7" else "uuid"
                    for match in HEX.findall(UUID.sub("", text)):
                        found[match] = len(match)
    return found


def _column(table, column, value, literals, now):
    """SQL (expression, params) for one column of a generated row, from the template's value."""
    if table == "jobs" and column == "state":
        return "'done'", []  # as a processed order leaves it
    if table == "jobs" and column == "finished_at":
        return "g.dt", []
    if table == "jobs" and column == "attempts":
        return "1", []
    if isinstance(value, float) and abs(value - now) < 86400:
        return "g.epoch", []
    blob = isinstance(value, bytes)
    text = value.decode() if blob else value
    if not isinstance(text, str):
        return "?", [value]
    if DATETIME.fullmatch(text):
        return "g.dt", []
    expression, params = "?", [text]
    for n, literal in enumerate(literals):
        if literal in text:
            expression, params = f"replace({expression}, ?, g.k{n})", params + [literal]
    if TEMPLATE_ORDER in text:
        expression, params = f"replace({expression}, ?, g.order_id)", params + [TEMPLATE_ORDER]
    return (f"CAST({expression} AS BLOB)" if blob else expression), params


def fill(path, rows, start, stop, total, ordered, now_ms):
    """Add orders ``start`` .. ``stop`` - 1 (of ``total``, spread over the year before now)."""
    forms = _identifiers(rows)
    literals = list(forms)
    conn = sqlite3.connect(path, isolation_level=None)
    # The whole file in cache (random-key indexes otherwise reread their pages for every row).
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-6000000", "temp_store=MEMORY"):
        conn.execute(f"PRAGMA {pragma}")
    step = YEAR_MS // max(total, 1)
    # The per-order values, made by SQLite from a generated series (a recursive CTE): a column
    # stored once per row, so every table's copy of an order gets the same identifiers.
    keys = []
    for literal in literals:
        width = 32 if forms[literal] in ("uuid", "uuid7") else forms[literal]
        random_hex = f"lower(hex(randomblob({(width + 1) // 2})))"
        if forms[literal] == "uuid7":  # as the app makes it: version 7, with the order's millisecond
            random_hex = (
                "printf('%012x', ms) || '7' || substr(lower(hex(randomblob(2))), 1, 3) || "
                "substr('89ab', 1 + abs(random()) % 4, 1) || lower(hex(randomblob(8)))"
            )
        elif ordered:  # uuid7-like: 48-bit millisecond timestamp, then random bits
            random_hex = f"printf('%012x', ms) || lower(hex(randomblob({(width - 12 + 1) // 2})))"
        keys.append(f"substr({random_hex}, 1, {width})")
    conn.execute(
        "CREATE TEMP TABLE g (n INTEGER PRIMARY KEY, order_id, dt, epoch"
        + "".join(f", k{n}" for n in range(len(literals)))
        + ")"
    )
    conn.execute("BEGIN")
    conn.execute(
        f"""WITH RECURSIVE series(n) AS (SELECT ? UNION ALL SELECT n + 1 FROM series WHERE n + 1 < ?),
                     timed(n, ms) AS (SELECT n, ? - 60000 - (? - n) * ? FROM series)
                     INSERT INTO g SELECT n, printf('BF%08d', n),
                        strftime('%Y-%m-%d %H:%M:%f', ms / 1000.0, 'unixepoch') || '000', ms / 1000.0
                        {"".join(", " + key for key in keys)} FROM timed""",
        (start, stop, now_ms, total, step),
    )
    for n, literal in enumerate(literals):
        if forms[literal] in ("uuid", "uuid7"):
            conn.execute(
                f"UPDATE g SET k{n} = substr(k{n}, 1, 8) || '-' || substr(k{n}, 9, 4) || '-' || "
                f"substr(k{n}, 13, 4) || '-' || substr(k{n}, 17, 4) || '-' || substr(k{n}, 21, 12)"
            )
    for table, (names, table_rows) in rows.items():
        for row in table_rows:
            pairs = [
                (name, _column(table, name, value, literals, now_ms / 1000))
                for name, value in zip(names, row, strict=True)
                if name != "id"
            ]
            since = now_ms / 1000 - KEPT_S[table] if table in KEPT_S else None
            sql = (
                f'INSERT INTO "{table}" ({", ".join(name for name, _ in pairs)}) '
                f"SELECT {', '.join(expression for _, (expression, _) in pairs)} FROM g"
                + (" WHERE g.epoch >= ?" if since is not None else "")
                + " ORDER BY g.n"
            )
            t0 = time.perf_counter()
            conn.execute(sql, [p for _, (_, params) in pairs for p in params] + ([since] if since is not None else []))
            FILL_TIMES[table] = FILL_TIMES.get(table, 0) + time.perf_counter() - t0
    conn.execute("COMMIT")
    conn.execute("DROP TABLE g")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def prefill(folder, kind, key, sizes, ordered=False):
    """{size: database file with that many orders}, filled once in turn; and the seconds it took."""
    folder = Path(folder) / f"prefill-{kind}{'-ordered' if ordered else ''}"
    path, rows = template(kind, folder / "work", key)
    started, now_ms, done, snapshots = time.perf_counter(), int(time.time() * 1000), 0, {}
    for size in sorted(sizes):
        if size > done:
            fill(path, rows, done, size, max(sizes), ordered, now_ms)
            done = size
        snapshots[size] = folder / f"{size}.sqlite"
        if size == max(sizes):
            path.rename(snapshots[size])  # the last one is not copied
        else:
            shutil.copyfile(path, snapshots[size])
        flushed(snapshots[size])
    shutil.rmtree(folder / "work")
    return snapshots, time.perf_counter() - started


def flushed(path):
    """Write the file's pages out now: a fresh 3 GB copy left to the kernel's writeback would be
    flushed during the timed run, in front of every commit's fsync."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
    return path


def count_orders(path, kind):
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT count(*) FROM {'instances' if kind == 'isvapp' else 'orders'}").fetchone()[0]


# --- the runs -------------------------------------------------------------------------------------


def uuid7_hex():
    return f"{int(time.time() * 1000):012x}" + secrets.token_hex(10)


def measure(quick, folder, live_server, env, wrk, request_file, new_order_body, key):
    """Alternating runs at each size: limit (random keys), isvapp, limit (time-ordered keys)."""
    sizes = (0, 2000) if quick else (0, 100_000, 1_000_000)
    seconds, pool, rounds = (1, 2000, 1) if quick else (8, 30_000, 2)
    started = time.perf_counter()
    prefilled, fill_s = {}, {}
    for name, kind, ordered in (
        ("isvapp", "isvapp", False),
        ("limit", "limit", False),
        ("limit_ordered", "limit", True),
    ):
        prefilled[name], fill_s[name] = prefill(folder, kind, key, sizes, ordered)
    figures = {
        "sizes": list(sizes),
        "seconds": seconds,
        "rounds": rounds,
        "fill_s": {name: round(s, 1) for name, s in fill_s.items()},
        "file_mib": {
            name: {size: round(path.stat().st_size / 2**20, 1) for size, path in files.items()}
            for name, files in prefilled.items()
        },
        "runs": {},
    }
    serial = 0
    for size in sizes:
        runs = figures["runs"][size] = {"isvapp": [], "limit": [], "limit_ordered": []}
        for _ in range(rounds):
            for name in ("limit", "isvapp", "limit_ordered"):
                serial += 1
                kind = "limit" if name.startswith("limit") else "isvapp"
                app, filename = APPS[kind]
                instance = Path(folder) / f"tables-{serial}"
                instance.mkdir()
                flushed(shutil.copyfile(prefilled[name][size], instance / filename))
                with live_server(instance, env=env, app=app) as server:
                    requests_path = request_file(
                        folder,
                        (new_order_body(i, f"S{serial}") for i in range(pool)),
                        nonce=uuid7_hex if name == "limit_ordered" else None,
                    )
                    result = wrk(server.url, requests_path, seconds)
                    requests_path.unlink()
                result["stored"] = count_orders(instance / filename, kind) - size
                runs[name].append(result)
                shutil.rmtree(instance)
    for files in prefilled.values():
        for path in files.values():
            path.unlink()
    summary = figures["summary"] = {}
    for size in sizes:
        runs = figures["runs"][size]
        median = {name: statistics.median(r["rps"] for r in runs[name]) for name in runs}
        summary[size] = {
            **median,
            "ratio": median["isvapp"] / median["limit"],
            "pairs": [i["rps"] / limit["rps"] for i, limit in zip(runs["isvapp"], runs["limit"], strict=True)],
            "ordered_vs_random": median["limit_ordered"] / median["limit"],
        }
    for size in sizes:
        for name in ("isvapp", "limit", "limit_ordered"):
            summary[size][f"{name}_of_empty"] = summary[size][name] / summary[sizes[0]][name]
    figures["total_s"] = round(time.perf_counter() - started, 1)
    return figures


def render(r):
    sizes, s = r["sizes"], r["summary"]
    largest = sizes[-1]
    lines = [
        "## 8. newInstance as the tables grow",
        "",
        "`bench/tables.py`: the headline's signed newInstance (wrk replaying pre-signed requests, gunicorn with 2",
        "workers) with orders already stored, beside the limit app holding as many rows in its own tables. Before",
        "the timing, one SQLite file per app is bulk-filled (INSERT ... SELECT from a generated table, the shape",
        "copied from the rows one real newInstance leaves: isvapp's instances, answers, events, jobs (done),",
        "signed_requests and callbacks; the limit app's nonces and orders; orders spread over the past year;",
        "replay entries (signed_requests, nonces) only of the last day and callback log rows only of the last",
        "91 days, as the prune job leaves them) and",
        f"copied at each size; every run gets its own copy. {r['rounds']} rounds of {r['seconds']} s runs per size, "
        "alternating limit, isvapp, limit with time-ordered keys; medians.",
        "",
        "| orders stored | isvapp req/s | limit req/s | isvapp / limit | isvapp / its empty figure | "
        "limit, time-ordered keys, req/s | limit time-ordered / uuid4 | limit / its empty figure |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for size in sizes:
        x = s[size]
        lines.append(
            f"| {size:,} | {x['isvapp']:.0f} | {x['limit']:.0f} | **{x['ratio']:.2f}** | "
            f"**{x['isvapp_of_empty']:.2f}** | {x['limit_ordered']:.0f} | {x['ordered_vs_random']:.2f} | "
            f"{x['limit_of_empty']:.2f} |"
        )
    target = s[largest]["isvapp_of_empty"]
    lines += [
        "",
        "Every pair (isvapp / limit): "
        + "; ".join(f"{size:,}: " + ", ".join(f"{p:.2f}" for p in s[size]["pairs"]) for size in sizes)
        + ".",
        "",
        f"Target (isvapp at {largest:,} orders >= 0.8 of its empty-table figure): "
        f"**{'met' if target >= 0.8 else 'missed'}** ({target:.2f}) in this run.",
        "",
        "Time-ordered keys: isvapp's event ids are time-ordered (version 7), but it keeps the marketplace's",
        "businessId as the instance id and its nonces as sent, so key order is measured on the limit app alone",
        "too: the same app with its nonce (its PRIMARY KEY) random (uuid4-like) or time-ordered (48-bit",
        "millisecond timestamp and random bits), in the stored rows and the requests. That isolates one index's",
        "growth.",
        "",
        "Pre-fill: "
        + ", ".join(f"{name} {seconds} s" for name, seconds in r["fill_s"].items())
        + f"; files at {largest:,} orders: "
        + ", ".join(f"{name} {files[largest]:,.0f} MiB" for name, files in r["file_mib"].items())
        + f". The section took {r['total_s']:.0f} s.",
        "",
    ]
    return lines


if __name__ == "__main__":
    if sys.argv[1:2] == ["one-order"]:
        _one_order(*sys.argv[2:5])
