"""What the processes last reported, by name (StatusItem): read by the go-live page and the alerts.

Names in use: ``worker_heartbeat`` (the worker, every HEARTBEAT_S), ``order_query`` (the last
order-query API call: ok or its error), ``backup`` (the last `isvapp backup`), ``selfcheck`` (the
last `isvapp selfcheck`: see :func:`last_selfcheck`), ``alert_delivered:<channel>`` and
``alert_failed:<channel>`` (each alert channel's last delivery and failure, channels.send_recorded),
``notices_choice`` (the notices chosen on the alerts page, notices.choose).
"""

from sqlalchemy import func, select

from ..extensions import db
from ..storage.models import Job, JobState, StatusItem, utcnow
from ..storage.transactions import write_transaction

HEARTBEAT_S = 15


def report(name, value, now=None):
    """Overwrite one status item, in a transaction of its own (it must not ride on another's fate)."""
    now = now or utcnow()
    with write_transaction(durable=False):
        row = db.session.get(StatusItem, name)
        if row is None:
            db.session.add(StatusItem(name=name, value=value, updated_at=now))
        else:
            row.value, row.updated_at = value, now


def read(*names):
    """{name: (value, updated_at)} for the names that were ever reported."""
    rows = db.session.execute(select(StatusItem).where(StatusItem.name.in_(names))).scalars()
    return {row.name: (row.value, row.updated_at) for row in rows}


def readiness(silent_s, now=None):
    """What a monitor or a load balancer asks (GET /readyz), and the go-live page shows: the
    worker's last heartbeat and its age, the jobs due and waiting, the oldest of them, the dead
    ones; ``ready`` while a worker reported within ``silent_s`` (ALERT_WORKER_SILENT_S, the
    worker_silent alert's threshold). Reads only; raises when the database cannot be read."""
    now = now or utcnow()
    beat = read("worker_heartbeat").get("worker_heartbeat")
    age = None if beat is None else max(0.0, (now - beat[1]).total_seconds())
    waiting, oldest = db.session.execute(
        select(func.count(), func.min(Job.run_after)).where(Job.state == JobState.QUEUED, Job.run_after <= now)
    ).one()
    dead = db.session.execute(select(func.count()).where(Job.state == JobState.DEAD)).scalar_one()
    problems = []
    if age is None:
        problems.append("no worker has ever reported")
    elif age > silent_s:
        problems.append(f"the worker's last heartbeat is {age:.0f} s old (limit {silent_s:g} s)")
    return {
        "ready": not problems,
        "worker": {
            "heartbeat_age_s": None if age is None else round(age, 1),
            "limit_s": silent_s,
            "worker": (beat[0] or {}).get("worker") if beat and isinstance(beat[0], dict) else None,
        },
        "queue": {
            "due": waiting,
            "oldest_waiting_s": None if oldest is None else round(max(0.0, (now - oldest).total_seconds()), 1),
        },
        "dead_jobs": dead,
        "problems": problems,
    }


SELFCHECK = "selfcheck"


def record_selfcheck(summary):
    """Keep the last self-check's summary (isvapp.selfcheck.summary) for every host to see."""
    report(SELFCHECK, summary)


def last_selfcheck():
    """The last `isvapp selfcheck` run, for the go-live page; None when it never ran.

    A dict:
    - ``url``: the URL it looked at (https://your.domain[:port]);
    - ``at``: when it was kept, a naive UTC datetime (as every time in the database);
    - ``worst``: "bad", "warn" or "ok";
    - ``counts``: {"bad": n, "warn": n, "ok": n}, findings per severity;
    - ``findings``: the ones that are not ok, worst first, each a dict with ``id`` (stable, e.g.
      "tls.tls1_0", "http.hsts", "server.banner"), ``severity`` ("bad" or "warn"), ``message``,
      ``fix`` and ``where`` (the page, cookie or probe it is about; "" when not one of several).

    The messages and fixes are English text made by the check; the ids are what a page may
    translate or link by.
    """
    value, at = read(SELFCHECK).get(SELFCHECK, (None, None))
    if not value:
        return None
    return {
        "url": value.get("url", ""),
        "at": at,
        "worst": value.get("worst", "ok"),
        "counts": {s: int(value.get("counts", {}).get(s, 0)) for s in ("bad", "warn", "ok")},
        "findings": list(value.get("findings", [])),
    }
