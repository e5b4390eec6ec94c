"""gunicorn settings for isvapp; each can be overridden with an ISVAPP_* environment variable."""

import gc
import os

from isvapp import instance_folder, logs, metrics
from isvapp.config import is_true

bind = os.environ.get("ISVAPP_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("ISVAPP_WORKERS", "2"))
# The marketplace gives up after 5 s; a request still running at 30 s is stuck.
timeout = int(os.environ.get("ISVAPP_WORKER_TIMEOUT", "30"))
graceful_timeout = 10
accesslog = os.environ.get("ISVAPP_ACCESS_LOG", "-")
# The path only (%(U)s), never the query string: G1's authToken and G2's signature travel there, and
# an access log that keeps them hands out replayable URLs. Timing (%(L)s s) is kept.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s'
errorlog = "-"
loglevel = os.environ.get("ISVAPP_LOG_LEVEL", "info")
# Behind nginx on the same host, trust its X-Forwarded-* headers.
forwarded_allow_ips = os.environ.get("ISVAPP_FORWARDED_ALLOW_IPS", "127.0.0.1")

if logs.wants_json(os.environ.get("ISVAPP_LOG_FORMAT")):
    # One JSON object per line (isvapp/logs.py): gunicorn's error and access logs, wherever they
    # go, and, through the root logger the workers inherit, the app's own lines.
    from gunicorn.glogging import Logger

    class JsonLogger(Logger):
        def setup(self, cfg):
            super().setup(cfg)
            for handler in (*self.error_log.handlers, *self.access_log.handlers):
                handler.setFormatter(logs.JsonFormatter())

    logger_class = JsonLogger
    logs.use_json(loglevel)


def on_starting(server):
    """Metrics are counted across the workers (and the background worker) in one folder of
    files (isvapp/metrics.py): named here, before any worker starts, and cleaned of the files of
    processes that are gone."""
    if is_true(os.environ.get("ISVAPP_METRICS_ENABLED", "true")):
        metrics.prepare_folder(instance_folder())


def child_exit(server, worker):
    """A worker is gone: its metrics files are merged away. Never raises: an exception here would
    stop gunicorn's arbiter, and with it every worker and the requests they are serving."""
    try:
        metrics.process_gone(worker.pid)
    except Exception:  # noqa: BLE001
        server.log.exception("could not tidy the metrics of worker %s", worker.pid)


def post_worker_init(worker):
    """Once a worker has loaded the app: take what is loaded out of the cyclic garbage collector's
    scans (gc.freeze), and collect young objects less often.

    Every full collection otherwise walks the whole loaded app (Flask, SQLAlchemy's metadata, the
    translations: hundreds of thousands of objects) though none of it ever becomes garbage, and
    a request allocates enough to set collections off every few requests. Measured (issue 17,
    signed newInstance under wrk): about 5% more requests a second.
    """
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
