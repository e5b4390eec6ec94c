"""Unexpected errors as alerts: an answer 500 from any route, a job that failed with an exception.

Grouped like every alert (isvapp/background/alerts.py: one message per kind and window, repeats
counted), under two kinds of their own:

- ``unexpected_error``: a page, the buyer's login, the License relay or the product's API
  answered 500 (a marketplace route answers 000005 instead, which raises ``internal_error``);
- ``job_failed``: a background job raised and will be tried again (one that fails for good
  raises ``dead_job``; a job delivering alerts raises neither, or a broken channel would loop).

A message names where and what: the route or the job, the exception's class, the innermost line
of isvapp's code it came from, and the request id that finds its lines in the server log. Not a
route error's text: it may hold anything, a secret included, and a robot's message leaves this
server. (A job's error is its own message, written not to hold secrets, as ``dead_job`` shows.)
"""

import logging
import os
import traceback

from ..extensions import db
from ..texts import N_
from . import alerts

log = logging.getLogger("isvapp.alerts")


PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../isvapp


def _where(error):
    """``isvapp/...py:line in function``: the innermost frame in isvapp's own code (else the last)."""
    frames = traceback.extract_tb(error.__traceback__)
    own = [frame for frame in frames if os.path.abspath(frame.filename).startswith(PACKAGE + os.sep)]
    if not frames:
        return "an unknown place"
    frame = (own or frames)[-1]
    path = os.path.abspath(frame.filename)
    shown = "isvapp/" + os.path.relpath(path, PACKAGE).replace(os.sep, "/") if own else os.path.basename(path)
    return f"{shown}:{frame.lineno} in {frame.name}"


def alert_request_error(method, path, error, request_id=None):
    """Raise "unexpected_error" for an answer 500, in a transaction of its own; never raises. What
    the failed request left on the session is rolled back first: the request failed."""
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001  a session that cannot even roll back: the alert is logged instead
        log.warning("could not roll back the failed request's session", exc_info=True)
    alerts.raise_alert_alone(
        "unexpected_error",
        N_("isvapp answered an unexpected error (HTTP 500)"),
        N_(
            "%(request)s failed with %(error)s at %(where)s and was answered 500 (request id %(request_id)s). "
            "The server log has its traceback; please report it if it is isvapp's."
        ),
        params={
            "request": f"{method} {path}",
            "error": type(error).__name__,
            "where": _where(error),
            "request_id": request_id or "-",
        },
    )


def alert_failed_job(row, error):
    """Raise "job_failed" in the transaction that queues the failed job again (a savepoint: a
    failure here is logged and never keeps the job from being retried)."""
    if row.kind in alerts.DELIVERY_JOBS:
        return
    lines = (error or "").strip().splitlines()
    reason = next((line for line in lines if line and not line.startswith((" ", "Traceback"))), "")
    try:
        with db.session.begin_nested():
            alerts.raise_alert(
                "job_failed",
                N_("A background job failed and will be tried again: %(kind)s"),
                N_(
                    "Job %(job)s (%(kind)s, key %(key)s) failed on attempt %(attempts)s of %(max_attempts)s: "
                    "%(reason)s\n\nIt runs again at %(run_at)s %(zone)s; see `.venv/bin/isvapp jobs list`."
                ),
                params={
                    "job": row.id,
                    "kind": row.kind,
                    "key": row.key,
                    "attempts": row.attempts,
                    "max_attempts": row.max_attempts,
                    "reason": reason[:500],
                    "run_at": row.run_after,
                },
            )
    except Exception:  # noqa: BLE001
        log.exception("could not raise the job_failed alert for job %s", row.id)


def register_jobs(registry):
    """The job_failed alert, a watcher of failing jobs (isvapp/__init__.py, register_jobs)."""
    registry.watch_failure(alert_failed_job)
