"""The benchmarks run at tiny sizes, so they cannot rot between real runs."""
import shutil

import pytest

from bench import __main__ as runner
from bench import dashboard, kit_sync


def test_kit_sync_benchmark_runs_and_reports_every_figure():
    figures = kit_sync.measure(60, 25, repeats=1)
    assert figures["departments"] == 60 and figures["users"] == 25
    assert all(figures[k] > 0 for k in figures if k.endswith("_s") or k.endswith("_mib"))


def test_dashboard_benchmark_runs_every_page():
    figures = dashboard.measure(300, 1500, repeats=1)
    assert figures["instances"] == 300 and all(figures[f"{name} ms"] > 0 for name in dashboard.PAGES)


@pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is installed by scripts/test.sh")
def test_the_whole_benchmark_runs_quickly_and_writes_its_report(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    results = runner.main(["--quick", "--out", str(out)])
    text = out.read_text()
    for heading in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6.", "## 7."):
        assert heading in text
    assert results["new"]["rps"] > 0 and results["bare"]["rps"] > 0 and results["query"]["ids"] == 100
    assert results["paced"]["codes"] == {"000000": results["paced"]["requests"]}
    assert results["abuse"]["abused_peak_mib"] > 0 and results["abuse"]["db_growth_mib"] >= 0
