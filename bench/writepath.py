"""The write path's machinery, each piece against its simpler form, in the same minutes.

isvapp's newInstance path has special machinery that a plainer program would not have. Each piece
is kept only if it pays, so each is measured against the same app with that piece replaced by the
simple form a plainer program would use, in alternating wrk runs:

- lean: the lean write transaction (a driver connection of its own, no ORM session) against the
  session's write transaction with the same pre-bound statements;
- binding: statements written once as SQL text and bound before the lock, run on the driver's
  cursor, against SQLAlchemy executing each Core statement on the session (lean off as well: a lean
  transaction has no session to execute on);
- retry: BEGIN IMMEDIATE retried every fraction of a millisecond against SQLite's own busy handler
  (PRAGMA busy_timeout, sleeping 1, 2, 5, 10 ... ms).

A fourth piece, the -wal file fsynced after the commit outside the lock, was measured here against
synchronous=FULL and removed: it did not pay (bench/NOTES.md).

The simpler forms are made here by replacing the functions once the app exists (gunicorn loads
``bench.writepath:app_without("lean")``); nothing in isvapp knows about them.

    python -m bench --only writepath [--quick]
"""

import statistics
import sys
from pathlib import Path

PIECES = ("lean", "binding", "retry")


def _replace(original, simpler):
    """Every loaded isvapp module's name for ``original`` now names ``simpler``."""
    for name, module in list(sys.modules.items()):
        if module is not None and (name == "isvapp" or name.startswith("isvapp.")):
            for attribute, value in list(vars(module).items()):
                if value is original:
                    setattr(module, attribute, simpler)


def _without_lean():
    from isvapp.storage import transactions

    _replace(transactions.lean_available, lambda: False)


def _without_binding():
    from isvapp.extensions import db
    from isvapp.storage import statements
    from sqlalchemy import text

    def bind_insert(table, params, ignore_conflicts=False, returning=False):
        table = getattr(table, "__table__", table)
        rows = params if isinstance(params, list) else [params]
        core = statements._prepare_insert(table, frozenset(rows[0]), ignore_conflicts, returning).core
        return statements.Bound(core, params, "", [], isinstance(params, list), returning)

    def bind_query(sql, **params):
        return statements.Bound(text(sql), params, "", [], False, True)

    def run_bound(bound):
        result = db.session.execute(bound.statement, bound.params)
        return result.first() if bound.returning else None

    _without_lean()
    _replace(statements.bind_insert, bind_insert)
    _replace(statements.bind_query, bind_query)
    _replace(statements.run_bound, run_bound)


def _without_retry():
    from isvapp.storage import connections

    armed = set()  # lean connections whose busy handler is on

    def begin_immediate(raw, busy_timeout_s, _last_try, handler_off=False):
        if handler_off and id(raw) not in armed:  # a lean connection keeps it off: on, once
            raw.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            armed.add(id(raw))
        raw.execute("BEGIN IMMEDIATE")  # SQLite's busy handler waits, up to the connection's busy_timeout

    _replace(connections.retry_begin_immediate, begin_immediate)


SIMPLER = {"lean": _without_lean, "binding": _without_binding, "retry": _without_retry}


def app_without(piece):
    """isvapp as wsgi.py makes it, with ``piece`` replaced by its simpler form."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from wsgi import app

    SIMPLER[piece]()
    return app


def _answers_an_order(url, key, body):
    """One signed newInstance, answered 000000: a simpler form that broke the path is not measured."""
    import json

    import requests
    from isvapp.koo.signing import g2_signed_request

    raw, query = g2_signed_request(key, body)
    reply = requests.post(
        url + "/produce", params=query, data=raw, headers={"Content-Type": "application/json"}, timeout=10
    )
    code = json.loads(reply.content).get("resultCode")
    if code != "000000":
        raise RuntimeError(f"write path bench: {url} answered {code} to a new order")


def measure(quick, folder, live_server, env, wrk, request_file, new_order_body, key):
    """Per piece: alternating runs of isvapp as it is and without the piece; medians of the ratios."""
    seconds, rounds, pool = (1, 1, 500) if quick else (10, 3, 40_000)
    results = {"seconds": seconds, "rounds": rounds, "pieces": {}}
    for piece in PIECES:
        simple_env, simple_app = env, f"bench.writepath:app_without({piece!r})"
        pairs = []
        with (
            live_server(Path(folder) / f"wp-{piece}-as-is", env=env) as as_is,
            live_server(Path(folder) / f"wp-{piece}-simpler", env=simple_env, app=simple_app) as simpler,
        ):
            for server, tag in ((as_is, "a"), (simpler, "b")):
                _answers_an_order(server.url, key, new_order_body(0, f"W{piece[:2]}C{tag}"))
            for n in range(rounds):
                kept = wrk(
                    as_is.url,
                    request_file(folder, (new_order_body(i, f"W{piece[:2]}{n}a") for i in range(pool))),
                    seconds,
                )
                plain = wrk(
                    simpler.url,
                    request_file(folder, (new_order_body(i, f"W{piece[:2]}{n}b") for i in range(pool))),
                    seconds,
                )
                for reply in (kept, plain):
                    if reply["non_2xx"]:
                        raise RuntimeError(f"write path bench, {piece}: {reply['non_2xx']} failed requests")
                pairs.append({"as_is": kept, "simpler": plain, "ratio": kept["rps"] / plain["rps"]})
        results["pieces"][piece] = {
            "pairs": pairs,
            "ratio": statistics.median(p["ratio"] for p in pairs),
            "as_is_rps": statistics.median(p["as_is"]["rps"] for p in pairs),
            "simpler_rps": statistics.median(p["simpler"]["rps"] for p in pairs),
            "as_is_p99": statistics.median(p["as_is"]["p99_ms"] for p in pairs),
            "simpler_p99": statistics.median(p["simpler"]["p99_ms"] for p in pairs),
        }
    return results


LABELS = {
    "lean": "lean transaction (vs the session's)",
    "binding": "statements bound before the lock (vs SQLAlchemy on the session)",
    "retry": "BEGIN IMMEDIATE retried in short steps (vs SQLite's busy handler)",
}


def render(r):
    lines = [
        "## 9. The write path's machinery against its simpler forms",
        "",
        "`bench/writepath.py`: the headline's newInstance against the same app with one piece replaced by the",
        "simple form a plainer program would use (the function swapped once the app exists; nothing in isvapp",
        f"knows), {r['rounds']} alternating pairs of {r['seconds']} s runs per piece; medians. A piece pays when isvapp",
        "as it is takes clearly more requests a second than without it (the machine's noise is a few per cent).",
        "",
        "| piece | as it is, req/s | simpler, req/s | as it is / simpler | p99 as it is | p99 simpler |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for piece in PIECES:
        x = r["pieces"][piece]
        lines.append(
            f"| {LABELS[piece]} | {x['as_is_rps']:.0f} | {x['simpler_rps']:.0f} | **{x['ratio']:.2f}** | "
            f"{x['as_is_p99']:.1f} ms | {x['simpler_p99']:.1f} ms |"
        )
    lines += [
        "",
        "Every pair (as it is / simpler): "
        + "; ".join(
            f"{piece}: " + ", ".join(f"{p['ratio']:.2f}" for p in r["pieces"][piece]["pairs"]) for piece in PIECES
        )
        + ".",
        "",
    ]
    return lines
