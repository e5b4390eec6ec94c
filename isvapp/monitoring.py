"""What a monitor reads: ``GET /metrics``, and the request id every answer carries.

/metrics is Prometheus' text format: every process's counts (isvapp/metrics.py) and, read from
the database as it is scraped, the jobs not done by kind and state and how long the longest-
waiting due job has waited (two indexed look-ups). It answers this host without a token; any
other client must send ``Authorization: Bearer <METRICS_TOKEN>`` and is refused while no token is
set. A request that came through a proxy (it carries X-Forwarded-For) is not this host's even when
the proxy runs here: nginx in front must not open the page to the internet.

The request id: an incoming X-Request-Id when it is sane (at most 64 of ``A-Z a-z 0-9 . _ -``, so
a proxy's id can be followed here), else a new one. It is in the answer's X-Request-Id, on every
log line written while the request is served (isvapp/logs.py) and on the callback log row.
"""

import hmac
import os
import re

from flask import Blueprint, Response, current_app, g, request
from sqlalchemy import func, select

from . import metrics, outbound
from .extensions import db
from .settings import settings_of
from .storage.models import Job, JobState, utcnow

bp = Blueprint("monitoring", __name__)

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
WAITING_STATES = (JobState.QUEUED, JobState.RUNNING, JobState.DEAD)


def request_id_for(sent):
    """The sent id when it is sane, else a new one (16 hex digits)."""
    if sent and REQUEST_ID.fullmatch(sent):
        return sent
    return os.urandom(8).hex()


class DatabaseFigures:
    """The figures read from the database at each scrape (the same from every host sharing it:
    graph them with max(), not sum())."""

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("isvapp_database_up", "1 when the scrape could read the database, else 0.")
        try:
            figures = list(_job_figures(GaugeMetricFamily))
        except Exception:  # noqa: BLE001  a monitor wants the page, and this says the database failed
            db.session.rollback()
            current_app.logger.warning("/metrics could not read the jobs from the database", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        finally:
            db.session.rollback()
        up.add_metric([], 1)
        yield up
        yield from figures


def _job_figures(gauge):
    jobs = gauge(
        "isvapp_jobs",
        "Background jobs not done, by kind and state (queued, running, dead), read at scrape.",
        labels=["kind", "state"],
    )
    rows = db.session.execute(
        select(Job.kind, Job.state, func.count()).where(Job.state.in_(WAITING_STATES)).group_by(Job.kind, Job.state)
    ).all()
    for kind, state, count in rows:
        jobs.add_metric([kind, state], count)
    yield jobs
    now = utcnow()
    oldest = db.session.execute(
        select(func.min(Job.run_after)).where(Job.state == JobState.QUEUED, Job.run_after <= now)
    ).scalar()
    yield gauge(
        "isvapp_jobs_oldest_waiting_seconds",
        "How long the longest-waiting due job has waited for a worker (0: none waits).",
        value=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
    )


def _from_this_host():
    return outbound.is_loopback(request.remote_addr) and "X-Forwarded-For" not in request.headers


def _refusal():
    """None when the request may read the metrics, else the answer that says why not."""
    token = settings_of(current_app).ops.metrics_token
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), token.encode()):
        return None
    if _from_this_host():
        return None
    if not token:
        return Response(
            "GET /metrics answers this host only; set METRICS_TOKEN to let a monitor elsewhere read it\n",
            403,
            content_type="text/plain",
        )
    return Response(
        "send Authorization: Bearer <METRICS_TOKEN>\n",
        401,
        content_type="text/plain",
        headers={"WWW-Authenticate": 'Bearer realm="isvapp-metrics"'},
    )


@bp.get("/metrics")
def metrics_page():
    refused = _refusal()
    if refused is not None:
        return refused
    body, content_type = metrics.exposition(DatabaseFigures())
    return Response(body, 200, content_type=content_type, headers={"Cache-Control": "no-store"})


def init_app(app):
    app.register_blueprint(bp)

    @app.before_request
    def _request_id():
        g.request_id = request_id_for(request.headers.get("X-Request-Id"))

    @app.after_request
    def _answer_request_id(response):
        request_id = g.get("request_id")
        if request_id:
            response.headers["X-Request-Id"] = request_id
        return response
