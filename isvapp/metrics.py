"""What happened, counted where it happens, for ``GET /metrics`` (Prometheus' text format).

Each event is counted by one call here, from the module where it happens (``metrics.callback``
in the callback log, ``metrics.job_run`` in the job runner ...); the page (isvapp/monitoring.py)
adds what it reads from the database when it is scraped (jobs waiting, the oldest one's age).
Label values come from fixed sets (interfaces, activities of the routes' tables, result codes,
job kinds, refusal reasons), never from what a stranger sends, so the series cannot multiply.

Across processes: gunicorn runs several workers and the background worker is a process of its
own. Each writes its counts to files of its own in one folder (prometheus-client's multiprocess
mode), and a scrape adds them up. The folder is ``PROMETHEUS_MULTIPROC_DIR``: gunicorn.conf.py
sets it before any worker starts (the instance folder's ``metrics/`` unless it is set already),
and ``isvapp worker`` sets the same for itself (:func:`share_folder`). prometheus-client chooses
its mode when it is first imported, so nothing here imports it before the first count.

One process, one app: the switch (METRICS_ENABLED) and the metrics are this module's, made once
per process, because the files they write are the process's.
"""

import functools
import logging
import os
import sys
import threading

FOLDER_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Answer times, in seconds, around the marketplace's 5 s budget.
ANSWER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

_switch = {"on": True}
_made: list = []  # [_Metrics] once the first count made them
_making = threading.Lock()


class _Metrics:
    """Every metric isvapp counts. Labelled, all of them: a labelled metric writes its file only
    when it first counts, so a command that counts nothing leaves nothing in the folder."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=False)

        def counter(name, text, labels):
            return Counter(name, text, labels, registry=self.registry)

        self.callbacks = counter(
            "isvapp_callbacks",
            "Marketplace requests answered, by interface (produce, license, kit), activity and result code.",
            ("interface", "activity", "result_code"),
        )
        self.answer_time = Histogram(
            "isvapp_callback_duration_seconds",
            "Time from a marketplace request's arrival to its answer, by interface (the budget is 5 s).",
            ("interface",),
            buckets=ANSWER_BUCKETS,
            registry=self.registry,
        )
        self.job_runs = counter(
            "isvapp_job_runs",
            "Background job runs, by kind and outcome (done, retry: failed and queued again, dead).",
            ("kind", "outcome"),
        )
        self.usage = counter(
            "isvapp_usage_pushed",
            "Pay-per-use usage records (an hour each) pushed to the marketplace: on_time, late (after "
            "their hour's deadline), rejected (refused by the marketplace).",
            ("outcome",),
        )
        self.alerts_raised = counter(
            "isvapp_alerts_raised", "Alerts and notices raised, by kind (repeats in a window included).", ("kind",)
        )
        self.alert_deliveries = counter(
            "isvapp_alert_deliveries",
            "Alert messages sent to a channel, by channel and outcome.",
            ("channel", "outcome"),
        )
        self.buyer_logins = counter(
            "isvapp_buyer_logins",
            "The buyer's logins (joint-operation products), by outcome: admitted, or the refusal's reason.",
            ("outcome",),
        )
        self.relay_calls = counter(
            "isvapp_relay_calls",
            "License relay calls from the merchant's installed software, by call and outcome.",
            ("call", "outcome"),
        )
        self.unexpected = counter(
            "isvapp_unexpected_errors",
            "Unexpected errors (an answer 500 or 000005, a job that raised), by where: request or job.",
            ("source",),
        )

        # (metric, label values) -> the labelled child: prometheus-client's labels() takes a lock
        # and checks its arguments on every call (4 us measured, twice a marketplace request)
        self.children = {}

    def child(self, metric, *values):
        key = (id(metric), values)
        found = self.children.get(key)
        if found is None:
            found = self.children[key] = metric.labels(*values)
        return found

    def collectors(self):
        return [
            self.callbacks,
            self.answer_time,
            self.job_runs,
            self.usage,
            self.alerts_raised,
            self.alert_deliveries,
            self.buyer_logins,
            self.relay_calls,
            self.unexpected,
        ]


def enable(on):
    """METRICS_ENABLED, set by create_app: off, nothing is counted."""
    _switch["on"] = bool(on)


def _metrics():
    """The metrics, made at the first count; None while counting is off."""
    if not _switch["on"]:
        return None
    if not _made:
        with _making:
            if not _made:
                _made.append(_Metrics())
    return _made[0]


# --- counting: one call where each thing happens ---------------------------------------------------


def _never_raises(count):
    """A count that fails (its folder gone, a full disk) is logged once and forgotten: counting
    must never change an answer or stop a job."""

    @functools.wraps(count)
    def counting(*args, **kwargs):
        try:
            count(*args, **kwargs)
        except Exception:  # noqa: BLE001
            if not _failed:
                _failed.append(True)
                logging.getLogger("isvapp.metrics").exception("counting failed; later failures are not logged")

    return counting


_failed: list = []


@_never_raises
def callback(interface, activity, result_code, seconds):
    if metrics := _metrics():
        metrics.child(metrics.callbacks, interface, activity, result_code).inc()
        metrics.child(metrics.answer_time, interface).observe(seconds)


@_never_raises
def job_run(kind, outcome):
    if metrics := _metrics():
        metrics.child(metrics.job_runs, kind, outcome).inc()


@_never_raises
def usage_pushed(on_time=0, late=0, rejected=0):
    if metrics := _metrics():
        for outcome, count in (("on_time", on_time), ("late", late), ("rejected", rejected)):
            if count:
                metrics.child(metrics.usage, outcome).inc(count)


@_never_raises
def alert_raised(kind, count=1):
    if metrics := _metrics():
        metrics.child(metrics.alerts_raised, kind).inc(count)


@_never_raises
def alert_delivery(channel, outcome):
    if metrics := _metrics():
        metrics.child(metrics.alert_deliveries, channel, outcome).inc()


@_never_raises
def buyer_login(outcome):
    if metrics := _metrics():
        metrics.child(metrics.buyer_logins, outcome).inc()


@_never_raises
def relay_call(call, outcome):
    if metrics := _metrics():
        metrics.child(metrics.relay_calls, call, outcome).inc()


@_never_raises
def unexpected_error(source):
    if metrics := _metrics():
        metrics.child(metrics.unexpected, source).inc()


# --- the exposition --------------------------------------------------------------------------------


class _Together:
    """Several collectors as one, for a registry made for one scrape."""

    def __init__(self, collectors):
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            yield from collector.collect()


def exposition(*extra):
    """(the text a scrape gets, its content type): every process's counts, plus ``extra``
    collectors (figures read from the database when scraped)."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(FOLDER_ENV):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    elif metrics := _metrics():
        registry.register(_Together(metrics.collectors()))
    registry.register(_Together(list(extra)))
    return generate_latest(registry), CONTENT_TYPE_LATEST


# --- the folder shared by the processes ------------------------------------------------------------


def default_folder(instance_path):
    return os.path.join(instance_path, "metrics")


def prepare_folder(instance_path):
    """For gunicorn.conf.py as the server starts, before any worker: the folder, made if missing
    and named in the environment the workers inherit, without the files of processes that are
    gone (the server's counts start again from zero; a background worker still running keeps its
    own). Returns the folder."""
    folder = os.environ.get(FOLDER_ENV) or default_folder(instance_path)
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        pid = _pid_of(name)
        if pid is not None and not _alive(pid):
            try:
                os.remove(os.path.join(folder, name))
            except FileNotFoundError:
                pass
    os.environ[FOLDER_ENV] = folder
    return folder


def share_folder(instance_path):
    """For a process started beside gunicorn (``isvapp worker``): count into the server's folder,
    so that its scrape sees this process's counts too. Call it before the first count; once
    prometheus-client is loaded in this process without a folder, its counts stay its own (None)."""
    if not os.environ.get(FOLDER_ENV) and "prometheus_client" in sys.modules:
        return None
    folder = os.environ.get(FOLDER_ENV) or default_folder(instance_path)
    os.makedirs(folder, exist_ok=True)
    os.environ[FOLDER_ENV] = folder
    return folder


def process_gone(pid):
    """gunicorn's child_exit: a worker that exited (its counts stay; live gauges would go)."""
    if os.environ.get(FOLDER_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def _pid_of(name):
    """The process id in a file name prometheus-client writes (counter_1234.db), or None."""
    stem, dot, extension = name.rpartition(".")
    pid = stem.rpartition("_")[2]
    return int(pid) if dot and extension == "db" and pid.isdigit() else None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
