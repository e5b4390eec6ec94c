"""GET /healthz: liveness plus a database round trip (for a load balancer: is this process
serving?). GET /readyz: the whole service (for a monitor: is the work being done?): the database
answers and a worker reported within ALERT_WORKER_SILENT_S; the body says what is wrong."""

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from .background import status
from .extensions import db
from .settings import settings_of

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    try:
        db.session.execute(text("SELECT 1")).scalar_one()
    except Exception as error:  # report, don't raise: a monitor wants a body it can read
        db.session.rollback()
        return jsonify(status="error", database=type(error).__name__), 503
    return jsonify(status="ok", database="ok")


@bp.get("/readyz")
def readyz():
    """200 while the database answers and a worker reported within ALERT_WORKER_SILENT_S, else
    503; the JSON names the heartbeat's age, the queue, its oldest job and the dead jobs."""
    try:
        found = status.readiness(settings_of(current_app).alerts.worker_silent_s)
        db.session.rollback()
    except Exception as error:  # a monitor wants a body it can read
        db.session.rollback()
        return jsonify(
            status="not_ready", database=type(error).__name__, problems=["the database does not answer"]
        ), 503
    body = {"status": "ready" if found["ready"] else "not_ready", "database": "ok", **found}
    response = jsonify(body)
    response.status_code = 200 if found["ready"] else 503
    response.headers["Cache-Control"] = "no-store"
    return response
