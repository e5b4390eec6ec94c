"""The benchmarks run at tiny sizes, so they cannot rot between real runs."""
from bench import kit_sync


def test_kit_sync_benchmark_runs_and_reports_every_figure():
    figures = kit_sync.measure(60, 25, repeats=1)
    assert figures["departments"] == 60 and figures["users"] == 25
    assert all(figures[k] > 0 for k in figures if k.endswith("_s") or k.endswith("_mib"))


def test_dashboard_benchmark_runs_every_page():
    from bench import dashboard
    figures = dashboard.measure(300, 1500, repeats=1)
    assert figures["instances"] == 300 and all(figures[f"{name} ms"] > 0 for name in dashboard.PAGES)
