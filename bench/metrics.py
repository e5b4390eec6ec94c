"""What the metrics cost the marketplace's path: signed newInstance with them and without.

Two servers of isvapp as it is: one counting (METRICS_ENABLED, the default: every worker writes
its counts to its files, prometheus-client's multiprocess mode), one with
ISVAPP_METRICS_ENABLED=false. The headline's newInstance is sent to both at the same time, by
two wrk: the machine is shared, and what else runs on it then falls on both alike, so that the
ratio of the two rates in a round is the metrics' own cost. (Measured in turn, 8 s each, the two
servers' ratio moved between 0.6 and 2.0 from one round to the next: only the load around them.) The median of the rounds' ratios is reported, and the
counting alone, timed in a process of its own. The rule (issue 35): the metrics may cost at most 5 %.

    python -m bench --only metrics [--quick]
"""

import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

LIMIT = 0.95  # metrics on / off, at least


def _one_order(url, key, body):
    """One signed newInstance, answered 000000: a server that broke the path is not measured."""
    from isvapp.koo.signing import g2_signed_request

    raw, query = g2_signed_request(key, body)
    reply = requests.post(
        url + "/produce", params=query, data=raw, headers={"Content-Type": "application/json"}, timeout=10
    )
    if json.loads(reply.content).get("resultCode") != "000000":
        raise RuntimeError(f"metrics bench: {url} did not answer a new order 000000")


def _counted(url):
    """newInstance answers counted on this server's /metrics (0 when it counts nothing)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(url + "/metrics", timeout=30).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "isvapp_callbacks_total" and sample.labels.get("activity") == "newInstance"
    )


COUNT_ALONE = """
import sys, time
from isvapp import metrics
metrics.callback("produce", "newInstance", "000000", 0.01)  # made once, as a worker's first request does
n = int(sys.argv[1])
t0 = time.perf_counter()
for _ in range(n):
    metrics.callback("produce", "newInstance", "000000", 0.01)
print((time.perf_counter() - t0) / n * 1e6)
"""

IN_ONE_PROCESS = """
import json, sys, tempfile, time, uuid
from isvapp import create_app, metrics
from isvapp.koo.signing import g2_signed_request
from isvapp.storage.schema import init_db

key, rounds, n = "bench-key-0000-1111", int(sys.argv[1]), int(sys.argv[2])
app = create_app({"TESTING": False, "INSTANCE_PATH": tempfile.mkdtemp(), "SECRET_KEY": "b" * 40, "KOO_ACCESS_KEY": key})
with app.app_context():
    init_db()
client = app.test_client()


def batch(on):
    metrics.enable(on)
    bodies = [{"activity": "newInstance", "orderId": o, "orderLineId": o + "-1", "businessId": o, "testFlag": "1"}
              for o in (uuid.uuid4().hex for _ in range(n))]
    signed = [g2_signed_request(key, body) for body in bodies]
    t0 = time.perf_counter()
    for raw, query in signed:
        client.post("/produce", query_string=query, data=raw, content_type="application/json").close()
    return (time.perf_counter() - t0) / n * 1000


batch(True)
rounds_ms = []
for r in range(rounds):
    first = r % 2 == 0
    ms = {first: batch(first)}
    ms[not first] = batch(not first)
    rounds_ms.append({"on": ms[True], "off": ms[False]})
print(json.dumps(rounds_ms))
"""


def _in_a_process(folder, script, *args):
    """Run ``script`` in a process of its own, in multiprocess mode (its files in ``folder``), as a
    gunicorn worker counts; its last line of output."""
    files = Path(folder) / "counted-alone"
    files.mkdir(exist_ok=True)
    out = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(files)},
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return out.stdout.strip().splitlines()[-1]


def count_alone_us(folder, n):
    """One request's counting alone (a counter and the answer-time histogram): microseconds."""
    return float(_in_a_process(folder, COUNT_ALONE, n))


def in_one_process(folder, rounds, n):
    """newInstance through the Flask test client in one process, batches with the metrics on and
    off in turn (the same process, database and disk): ms per request, per round."""
    return json.loads(_in_a_process(folder, IN_ONE_PROCESS, rounds, n))


def measure(quick, folder, live_server, env, wrk, request_file, new_order_body, key):
    seconds, rounds, pool = (1, 2, 500) if quick else (8, 12, 40_000)
    pairs = []
    with (
        live_server(Path(folder) / "metrics-on", env=env) as on,
        live_server(Path(folder) / "metrics-off", env={**env, "ISVAPP_METRICS_ENABLED": "false"}) as off,
    ):
        for server, tag in ((on, "a"), (off, "b")):
            _one_order(server.url, key, new_order_body(0, f"MC{tag}"))
        for n in range(rounds):
            files = {
                tag: request_file(folder, (new_order_body(i, f"M{n}{tag}") for i in range(pool)))
                for tag in ("on", "off")
            }
            with ThreadPoolExecutor(2) as both:  # at the same time: the machine's other load falls on both
                running = {
                    tag: both.submit(wrk, server.url, files[tag], seconds) for server, tag in ((on, "on"), (off, "off"))
                }
                runs = {tag: future.result() for tag, future in running.items()}
            for tag, run in runs.items():
                if run["non_2xx"]:
                    raise RuntimeError(f"metrics bench: {run['non_2xx']} failed requests ({tag})")
            pairs.append({**runs, "ratio": runs["on"]["rps"] / runs["off"]["rps"]})
        counted_on, counted_off = _counted(on.url), _counted(off.url)
    sent_on = 1 + sum(p["on"]["requests"] for p in pairs)
    return {
        "count_us": count_alone_us(folder, 2_000 if quick else 200_000),
        "in_process": in_one_process(folder, *((2, 20) if quick else (10, 300))),
        "seconds": seconds,
        "rounds": rounds,
        "pairs": pairs,
        "ratio": statistics.median(p["ratio"] for p in pairs),
        # all the runs together: every request each server answered, in the same total time
        "total_ratio": sum(p["on"]["requests"] for p in pairs) / sum(p["off"]["requests"] for p in pairs),
        "on_rps": statistics.median(p["on"]["rps"] for p in pairs),
        "off_rps": statistics.median(p["off"]["rps"] for p in pairs),
        "on_p99": statistics.median(p["on"]["p99_ms"] for p in pairs),
        "off_p99": statistics.median(p["off"]["p99_ms"] for p in pairs),
        "counted_on": counted_on,
        "sent_on": sent_on,
        "counted_off": counted_off,
    }


def render(r):
    verdict = "met" if r["ratio"] >= LIMIT else "missed"
    on_ms = statistics.median(x["on"] for x in r["in_process"])
    off_ms = statistics.median(x["off"] for x in r["in_process"])
    return [
        "## 11. What the metrics cost",
        "",
        "`bench/metrics.py`: the headline's newInstance against two servers of isvapp as it is, one counting",
        "(`METRICS_ENABLED`, the default: each worker writes its counts to its own memory-mapped files) and one",
        f"with `ISVAPP_METRICS_ENABLED=false`, both at the same time (two wrk, {r['seconds']} s, {r['rounds']} rounds), so",
        "that whatever else runs on the shared machine falls on both alike; medians. Each server has the machine",
        "only half the time: read the ratio, not the rates.",
        "",
        "| | requests/s | p99 |",
        "| --- | --- | --- |",
        f"| metrics on | {r['on_rps']:.0f} | {r['on_p99']:.1f} ms |",
        f"| metrics off | {r['off_rps']:.0f} | {r['off_p99']:.1f} ms |",
        f"| **on / off** | **{r['ratio']:.3f}** (at least {LIMIT}: the metrics may cost 5 %) | |",
        "",
        "Every round (on / off): " + ", ".join(f"{p['ratio']:.3f}" for p in r["pairs"]) + f"; all the rounds together "
        f"(requests answered with the metrics / without, in the same time): {r['total_ratio']:.3f}.",
        f"Target: **{verdict}** in this run. The counting server's /metrics counted {r['counted_on']:.0f} newInstance",
        f"answers of the {r['sent_on']} it was sent as wrk counted them (wrk counts only the answers it finished in",
        f"its time, so a few more may be counted); the other counted {r['counted_off']:.0f}.",
        "",
        f"In one process (the Flask test client, multiprocess mode, one database), {len(r['in_process'])} rounds of",
        "newInstance batches with the metrics on and off in turn (which goes first swaps every round):",
        f"**{on_ms:.3f} ms** per request with them, {off_ms:.3f} ms without (medians); on / off in requests a second:",
        f"**{off_ms / on_ms:.3f}**. The counting alone (a counter and the answer-time histogram, timed in a process of",
        f"its own): **{r['count_us']:.1f} µs per request**, {r['count_us'] / 10 / off_ms:.2f} % of a newInstance's time there.",
        "",
    ]
