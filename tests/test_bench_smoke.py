"""The benchmarks run at tiny sizes, so they cannot rot between real runs."""

import re
import shutil
import sqlite3
import uuid

import pytest
from bench import __main__ as runner
from bench import dashboard, kit_sync, tables, writepath


def test_kit_sync_benchmark_runs_and_reports_every_figure():
    figures = kit_sync.measure(60, 25, repeats=1)
    assert figures["departments"] == 60 and figures["users"] == 25
    assert all(figures[k] > 0 for k in figures if k.endswith("_s") or k.endswith("_mib"))


def test_dashboard_benchmark_runs_every_page():
    figures = dashboard.measure(300, 1500, repeats=1)
    assert figures["instances"] == 300 and all(figures[f"{name} ms"] > 0 for name in dashboard.PAGES)


@pytest.mark.live
@pytest.mark.once_beside  # its SQLite sections run in the PostgreSQL run too (bench/__main__.py)
@pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is installed by scripts/test.sh")
def test_the_whole_benchmark_runs_quickly_and_writes_its_report(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    results = runner.main(["--quick", "--out", str(out)])
    text = out.read_text()
    for heading in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6.", "## 7.", "## 8.", "## 9.", "## 11."):
        assert heading in text
    # the metrics' cost: both servers measured, only the counting one counted
    cost = results["metrics"]
    assert cost["on_rps"] > 0 and cost["off_rps"] > 0 and cost["count_us"] > 0
    assert cost["counted_on"] >= cost["sent_on"] > 1 and cost["counted_off"] == 0
    assert results["new"]["rps"] > 0 and results["bare"]["rps"] > 0 and results["query"]["ids"] == 100
    assert results["paced"]["codes"] == {"000000": results["paced"]["requests"]}
    assert results["abuse"]["abused_peak_mib"] > 0 and results["abuse"]["db_growth_mib"] >= 0
    tables = results["tables"]
    assert tables["sizes"] == [0, 2000]
    for size in tables["sizes"]:
        figures = tables["summary"][size]
        assert figures["isvapp"] > 0 and figures["limit"] > 0 and figures["limit_ordered"] > 0
        # the orders were really stored beside the pre-filled ones
        assert all(run["stored"] > 0 for runs in tables["runs"][size].values() for run in runs)
        row = re.search(
            rf"^\| {size:,} \| (\d+) \| (\d+) \| \*\*([\d.]+)\*\* \| \*\*([\d.]+)\*\* \| (\d+) \| ([\d.]+) \|",
            text,
            re.MULTILINE,
        )
        assert row, f"no table row for {size} orders"
        assert int(row.group(1)) == round(figures["isvapp"]) and float(row.group(3)) > 0 and float(row.group(6)) > 0
    # each simpler form of the write path answered a real order and was measured beside isvapp as it is
    pieces = results["writepath"]["pieces"]
    assert sorted(pieces) == sorted(writepath.PIECES)
    for piece, figures in pieces.items():
        assert figures["as_is_rps"] > 0 and figures["simpler_rps"] > 0, piece
        assert f"| {writepath.LABELS[piece]} | {figures['as_is_rps']:.0f} | {figures['simpler_rps']:.0f} |" in text


@pytest.mark.any_database  # SQLite files of its own
@pytest.mark.live  # bench.tables writes its one real order in a process of its own
def test_prefill_copies_the_shape_of_a_real_order(tmp_path):
    """The bulk fill writes every table one real newInstance writes, as many rows per order, except
    what the prune job deletes: of orders spread over a year, the pruned tables keep the newest."""
    snapshots, _ = tables.prefill(tmp_path, "isvapp", runner.KEY, [0, 3000])
    with sqlite3.connect(snapshots[3000]) as conn:
        counts = {
            name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            for name in ("instances", "answers", "events", "jobs", "signed_requests", "callbacks")
        }
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        ids = conn.execute("SELECT count(DISTINCT instance_id) FROM instances").fetchone()[0]
        newest = [
            row[0]
            for row in conn.execute("SELECT order_id FROM instances ORDER BY id DESC LIMIT ?", (counts["callbacks"],))
        ]
        logged = [row[0] for row in conn.execute("SELECT order_id FROM callbacks ORDER BY id DESC")]
        event_ids = [row[0] for row in conn.execute("SELECT event_id FROM events ORDER BY id")]
    kept = {name: 3000 * tables.KEPT_S[name] / (365 * 86400) for name in ("signed_requests", "callbacks")}
    assert {k: v for k, v in counts.items() if k not in kept} == {
        "instances": 3000,
        "answers": 3000,
        "events": 3000,
        "jobs": 6000,
    } and ids == 3000
    assert all(abs(counts[name] - expected) <= 1 for name, expected in kept.items()), (counts, kept)
    assert 740 <= counts["callbacks"] and logged == newest  # 91 days of 365: the newest orders' rows
    # isvapp's event ids are time-ordered, and so are the ones the fill makes in their place.
    assert event_ids == sorted(event_ids) and {uuid.UUID(e).version for e in event_ids} == {7}
    with sqlite3.connect(snapshots[0]) as conn:
        assert conn.execute("SELECT count(*) FROM instances").fetchone()[0] == 0


def test_each_simpler_form_replaces_the_piece_it_names(monkeypatch):
    """The variants really swap the machinery out in every module that names it (the real gunicorn
    runs above show that the simple forms still answer orders)."""
    import sys

    from isvapp.domain import lifecycle, replays
    from isvapp.produce import pipeline
    from isvapp.storage import connections, statements, transactions

    originals = [
        transactions.lean_available,
        statements.run_bound,
        statements.bind_insert,
        connections.retry_begin_immediate,
        statements.bind_query,
    ]
    for name, module in list(sys.modules.items()):
        if module is not None and name.startswith("isvapp"):
            for attribute, value in list(vars(module).items()):
                if any(value is original for original in originals):
                    monkeypatch.setattr(module, attribute, value)  # put back after the test
    writepath.SIMPLER["binding"]()
    writepath.SIMPLER["retry"]()
    assert pipeline.lean_available() is False
    assert lifecycle.run_bound is replays.run_bound is statements.run_bound is not originals[1]
    assert lifecycle.bind_insert is statements.bind_insert is not originals[2]
    assert lifecycle.bind_query is statements.bind_query is not originals[4]
    assert transactions.retry_begin_immediate is connections.retry_begin_immediate is not originals[3]


def test_a_new_instance_walks_down_from_the_state_machine_to_storage_once():
    """bench/crossings.py traces one signed newInstance: the state machine decides (it seals the
    password and stamps times, storage's two helpers) and storage runs the plan in one call; it
    never climbs back into lifecycle. Before the plan it was 9 calls down (issue 36)."""
    from bench.crossings import trace_new_instance

    found = trace_new_instance()
    assert found["storage to lifecycle"] == 0 and found["lifecycle to storage"] <= 2, found
    assert found["detail"].get("into storage from isvapp.produce.pipeline") == 1, found  # run_plan
