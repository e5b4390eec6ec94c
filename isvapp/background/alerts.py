"""Alerts for the merchant: raised, recorded, written in the reader's language, and delivered to
the channels (channels.py: e-mail, WeCom, DingTalk and Feishu group robots).

An alert is one ``Alert`` row per kind and time window (ALERT_WINDOW_MIN, default an hour): a
repeat in the same window only counts up, so a burst of failures sends one message that says how
many there were. Rows are written with the caller's transaction (``raise_alert``) or in one of
their own (``raise_alert_alone``), and delivered by an ``alert`` job, so a message is sent only
for what committed, and an unreachable channel retries with the job queue's backoff.

Repeats that arrive after the message went out still count up on the row (the dashboard shows
it) but are not sent again: the next window's first one is.
"""

import json
import logging
import os
import shutil
import socket
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select, update

from .. import metrics
from ..extensions import db
from ..privatefiles import create_private
from ..settings import settings_of
from ..storage.models import Alert, Job, JobState, utcnow
from ..storage.statements import insert_ignore
from ..storage.transactions import write_transaction
from ..texts import N_, Text, render, translator, untranslated, zone_label
from ..throttle import Throttle
from . import jobs, status
from .channels import ChannelConfigError, ChannelError, configured_channels, inert, send, send_recorded
from .registry import current as current_registry

log = logging.getLogger("isvapp.alerts")

# --- raising ---------------------------------------------------------------------------------------


def window_key(now=None, window_min=None):
    """The window ``now`` falls in: floor(now / window), written as its start, e.g. 2026-11-25T05:00Z/60m."""
    start, minutes = _window(now or utcnow(), window_min)
    return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%MZ") + f"/{minutes}m"


def _window(now, window_min):
    """(the epoch second the window holding ``now`` starts at, its length in minutes)."""
    minutes = window_min or settings_of(current_app).alerts.window_min
    aware = now if now.tzinfo else now.replace(tzinfo=UTC)
    return int(aware.timestamp() // (minutes * 60)) * minutes * 60, minutes


def raise_alert(kind, subject, text, now=None, count=1, window_min=None, hold=False, params=None):
    """Record an alert INSIDE the caller's write transaction; returns the alert's id.

    ``subject`` and ``text`` are msgids (literals wrapped in N_ at the call, for the catalog) with
    ``%(name)s`` parameters given in ``params``: the row keeps them (``message``) beside their
    English words, and whoever reads the alert renders it in their language (:func:`message`).
    The first of its kind in the window inserts the row and enqueues its ``alert`` job (both
    commit or roll back with the caller's work); a repeat only adds ``count`` to ``count``.
    ``window_min``: this kind's own window; ``hold``: send when the window closes, not at once, so
    that the message counts all of it (the merchant's notices, isvapp/background/notices.py).
    """
    now = now or utcnow()
    kind, window = str(kind)[:32], window_key(now, window_min)
    stored = {"subject": str(subject), "text": str(text), "params": Text.of(str(subject), **(params or {})).params}
    english = message(Alert(kind=kind, window=window, count=count, created_at=now, message=stored), repeats=False)
    inserted = insert_ignore(
        Alert,
        kind=kind,
        window=window,
        subject=english[0][:255],
        text=english[1],
        message=stored,
        count=count,
        created_at=now,
    )
    if not inserted:
        db.session.execute(
            update(Alert).where(Alert.kind == kind, Alert.window == window).values(count=Alert.count + count)
        )
    alert_id = db.session.execute(select(Alert.id).where(Alert.kind == kind, Alert.window == window)).scalar_one()
    metrics.alert_raised(kind, count)
    if inserted:
        delay_s = _window_left_s(now, window_min) if hold else 0
        job_kind = DIRECT_JOB if kind in DIRECT_KINDS else "alert"
        jobs.enqueue(job_kind, f"{alert_id}:{kind}:{window}", {"alert_id": alert_id, "sent": []}, delay_s=delay_s)
    return alert_id


# Alerts about the worker itself and the host (the worker silent, back again; the disk nearly
# full): delivered by a job of their own kind, which the web processes run too (watchdog.py),
# since a message about a stopped worker must not wait for that worker.
DIRECT_KINDS = ("worker_silent", "worker_recovered", "disk_low")
DIRECT_JOB = "direct_alert"
# The jobs that deliver alerts. One that fails raises no alert of its own (through the same
# channels it would loop); the alerts page shows each channel's last delivery instead.
DELIVERY_JOBS = ("alert", DIRECT_JOB)


def _window_left_s(now, window_min):
    """Seconds until the window holding ``now`` closes, and one more."""
    start, minutes = _window(now, window_min)
    aware = now if now.tzinfo else now.replace(tzinfo=UTC)
    return start + minutes * 60 - aware.timestamp() + 1


def raise_alert_alone(kind, subject, text, now=None, params=None):
    """``raise_alert`` in a write transaction of its own; any failure is logged, never raised.

    For code past the point of no return (an answer already sent, a worker's heartbeat check):
    a failing database must not turn into an error there. Call it with no transaction open on
    the session (a read left open is rolled back first; a write in progress is not touched and
    the alert is logged instead). Returns the alert's id, or None when it could not be recorded.
    """
    try:
        session = db.session()
        if session.in_transaction():
            if session.new or session.dirty or session.deleted:
                raise RuntimeError("a write transaction is open on the session")
            session.rollback()  # a read transaction left open (autobegin): nothing to lose
        with write_transaction():
            return raise_alert(kind, subject, text, now=now, params=params)
    except Exception:  # noqa: BLE001  alerts must never break the caller
        log.exception("could not record alert %s: %s", kind, str(subject)[:200])
        return None


# --- checks ----------------------------------------------------------------------------------------


def check_worker_heartbeat(now=None):
    """Raise "worker_silent" when no worker has reported for ALERT_WORKER_SILENT_S seconds (or none
    ever did while a job has waited that long). For the web side (the go-live page, health checks); runs its
    own transactions and never raises. Returns the alert id, or None when the workers are fine."""
    session = db.session()
    if session.new or session.dirty or session.deleted:
        log.error("check_worker_heartbeat() called with unsaved changes on the session; skipped")
        return None
    try:
        now = now or utcnow()
        limit = settings_of(current_app).alerts.worker_silent_s
        beat = status.read("worker_heartbeat").get("worker_heartbeat")
        queued, oldest = db.session.execute(
            select(func.count(), func.min(Job.created_at)).select_from(Job).where(Job.state == JobState.QUEUED)
        ).one()
        db.session.rollback()  # end the read: the alert is written in a transaction of its own
    except Exception:  # noqa: BLE001
        db.session.rollback()
        log.exception("could not read the worker heartbeat")
        return None
    if beat is None:
        # A worker that never reported gets the same grace as a silent one, counted from the oldest
        # job waiting: at start-up a callback may well arrive before the worker's first heartbeat.
        if not queued or (now - oldest).total_seconds() <= limit:
            return None
        return raise_alert_alone(
            "worker_silent",
            N_("No background worker is running"),
            N_(
                "No worker has ever reported, and %(queued)s job(s) are waiting, the oldest for %(age)s s. "
                "Start one: `.venv/bin/isvapp worker` (see docs/deploy.md)."
            ),
            now=now,
            params={"queued": queued, "age": int((now - oldest).total_seconds())},
        )
    value, updated_at = beat
    age = (now - updated_at).total_seconds()
    if age <= limit:
        return None
    who = (value or {}).get("worker", "?") if isinstance(value, dict) else "?"
    return raise_alert_alone(
        "worker_silent",
        N_("The background worker has stopped reporting"),
        N_(
            "The last worker heartbeat (%(worker)s) is %(age)s s old (limit %(limit)s s); %(queued)s job(s) "
            "are waiting. Orders' follow-up work is not being done."
        ),
        now=now,
        params={"worker": who, "age": int(age), "limit": f"{limit:g}", "queued": queued},
    )


def check_worker_recovered(now=None):
    """Raise "worker_recovered" once a worker reports again after a "worker_silent" alert (and none
    said so since): the merchant who was told it stopped hears that it runs again. Runs its own
    transactions and never raises; returns the alert id, or None."""
    try:
        now = now or utcnow()
        limit = settings_of(current_app).alerts.worker_silent_s
        latest = {
            kind: at
            for kind, at in db.session.execute(
                select(Alert.kind, func.max(Alert.created_at))
                .where(Alert.kind.in_(("worker_silent", "worker_recovered")))
                .group_by(Alert.kind)
            ).all()
        }
        beat = status.read("worker_heartbeat").get("worker_heartbeat")
        queued = db.session.execute(
            select(func.count()).select_from(Job).where(Job.state == JobState.QUEUED)
        ).scalar_one()
        db.session.rollback()
    except Exception:  # noqa: BLE001
        db.session.rollback()
        log.exception("could not read the worker heartbeat")
        return None
    silent_at, recovered_at = latest.get("worker_silent"), latest.get("worker_recovered")
    if silent_at is None or (recovered_at is not None and recovered_at >= silent_at) or beat is None:
        return None
    value, updated_at = beat
    if updated_at <= silent_at or (now - updated_at).total_seconds() > limit:
        return None
    who = (value or {}).get("worker", "?") if isinstance(value, dict) else "?"
    return raise_alert_alone(
        "worker_recovered",
        N_("The background worker is running again"),
        N_(
            "A worker (%(worker)s) reported at %(beat_at)s %(zone)s, after the silence alerted at %(silent_at)s "
            "%(zone)s; %(queued)s job(s) are waiting and being done again."
        ),
        now=now,
        params={"worker": who, "beat_at": updated_at, "silent_at": silent_at, "queued": queued},
    )


def check_disk(path=None, now=None, usage=shutil.disk_usage):
    """Raise "disk_low" when the instance folder's disk has under ALERT_DISK_FREE_PCT % free."""
    path = path or current_app.instance_path
    limit = settings_of(current_app).alerts.disk_free_pct
    total, _used, free = usage(path)
    percent = 100.0 * free / total if total else 100.0
    if percent >= limit:
        return None
    return raise_alert_alone(
        "disk_low",
        N_("Disk space is low"),
        N_(
            "The disk holding %(path)s has %(percent)s%% free (%(free)s MiB of %(total)s MiB; alert below "
            "%(limit)s%%). When it is full the database cannot write, and every marketplace call fails."
        ),
        now=now,
        params={
            "path": path,
            "percent": f"{percent:.1f}",
            "free": free // 2**20,
            "total": total // 2**20,
            "limit": f"{limit:g}",
        },
    )


DISK_CHECKS = Throttle(300)  # the worker's disk check, at most every 5 minutes per worker


def check_disk_periodically(force=False):
    if not (DISK_CHECKS.due() or force):
        return None
    return check_disk()


def alert_dead_job(row, error):
    """Raise a "dead_job" alert in the transaction that makes the job dead (a savepoint: a failure
    here is logged and never keeps the job from being marked dead). An alert job that dies raises
    none (it would loop)."""
    if row.kind in DELIVERY_JOBS:
        return
    last = (error or "").strip().splitlines()
    reason = next((line for line in last if line and not line.startswith((" ", "Traceback"))), "")
    try:
        with db.session.begin_nested():
            raise_alert(
                "dead_job",
                N_("A background job failed for good: %(kind)s"),
                N_(
                    "Job %(job)s (%(kind)s, key %(key)s) is dead after %(attempts)s attempts: %(reason)s\n\n"
                    "See `.venv/bin/isvapp jobs list --state dead`; `.venv/bin/isvapp jobs retry %(job)s` runs it again."
                )
                if not row.instance_id
                else N_(
                    "Job %(job)s (%(kind)s, key %(key)s, instance %(instance)s) is dead after %(attempts)s attempts: "
                    "%(reason)s\n\nSee `.venv/bin/isvapp jobs list --state dead`; `.venv/bin/isvapp jobs retry "
                    "%(job)s` runs it again."
                ),
                params={
                    "job": row.id,
                    "kind": row.kind,
                    "key": row.key,
                    "instance": row.instance_id,
                    "attempts": row.attempts,
                    "reason": reason[:500],
                },
            )
    except Exception:  # noqa: BLE001
        log.exception("could not raise the dead_job alert for job %s", row.id)


def message(alert, gettext=untranslated, zone_name="UTC", repeats=True, html=False, inert_values=False):
    """(subject, text) of ``alert`` in ``gettext``'s language, its times in ``zone_name``. A row from
    before alerts kept their msgids is shown in the English it was stored in. ``repeats``: add how
    many times it happened in its window (the channels' message; the pages have a column for it).
    ``html``: Markup for a page, its values marked as data (isvapp.texts.render). ``inert_values``:
    every text value on one line and without markup (:func:`inert`), for a robot's or a mail's text."""
    stored, kinds = alert.message or {}, current_registry()
    if stored.get("subject"):
        subject_id, text_id, params = stored["subject"], stored.get("text", ""), dict(stored.get("params") or {})
    elif alert.kind in kinds.legacy_messages:
        (subject_id, text_id), params = kinds.legacy_messages[alert.kind], _json_object(alert.text)
    else:
        subject_id, text_id, params = None, None, {}
    # A kind whose message is written when it is read, from its whole window (notices).
    more = kinds.renderers.get(alert.kind)
    if more:
        params.update(more(alert, params, gettext))
    params.setdefault("zone", zone_label(zone_name))
    if inert_values:
        params = _inert_params(params)
    if subject_id is None:
        subject, text = alert.subject, alert.text
    else:
        subject = render(Text(subject_id, params), gettext, zone_name, html)
        text = render(Text(text_id, params), gettext, zone_name, html)
    if repeats and alert.count > 1 and not more:
        text += "\n\n" + render(
            Text(
                N_(
                    "This happened %(count)s times in this window (%(window)s, first at %(first_at)s %(zone)s); "
                    "the first is shown."
                ),
                {"count": alert.count, "window": alert.window, "first_at": alert.created_at, "zone": params["zone"]},
            ),
            gettext,
            zone_name,
        )
    return subject, text


def _inert_params(params):
    """Every text value of ``params`` made :func:`inert`, also inside a Text a parameter holds (a
    notice's sample of orders)."""

    def one(value):
        if isinstance(value, str):
            return inert(value)
        if isinstance(value, Text):
            return Text(value.msgid, _inert_params(value.params))
        if isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[1], dict):
            return [value[0], _inert_params(value[1])]  # a Text as stored: [msgid, params]
        if isinstance(value, (list, tuple)):
            return [one(v) for v in value]
        return value

    return {name: one(value) for name, value in params.items()}


def _json_object(text):
    try:
        found = json.loads(text or "")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def message_for_channels(alert, settings):
    """The message the channels send: in ALERT_LANGUAGE, times in DISPLAY_TIMEZONE."""
    return message(alert, translator(alert_language(settings)), display_zone(settings), inert_values=True)


def alert_language(settings):
    return settings.alerts.language


def display_zone(settings):
    """DISPLAY_TIMEZONE, or UTC when it names no zone (an alert is sent whatever the setting says)."""
    name = settings.pages.timezone or "UTC"
    try:
        ZoneInfo(name)
    except (KeyError, ValueError):
        return "UTC"
    return name


# --- delivery --------------------------------------------------------------------------------------


def deliver(job):
    """Send the alert to every configured channel, then set its ``sent_at``.

    The channels that already took the message are kept in the job's payload (``sent``), each
    written as soon as that channel succeeded, in a transaction of its own: a retry after one
    channel failed sends only to the others. The payload, not the alert row, because this is the
    state of one delivery attempt (the job's business, like its attempts and error), the Alert
    table has no column for it, and the job row is already held by this worker's lease: writing it
    is guarded by the lease like completing it, so two workers never both record a send.
    A channel failure raises, and the job retries with the queue's backoff; settings errors
    (http:// to another host, ALERT_SMTP_TLS=none to another host) fail for good at once.
    """
    settings = settings_of(current_app)
    alert_id = int(job.payload["alert_id"])
    alert = db.session.get(Alert, alert_id)
    if alert is None:
        db.session.rollback()
        return  # pruned meanwhile: nothing left to say
    subject, text = message_for_channels(alert, settings)
    # No transaction held while talking to the  Only the plain values above are used
    # after this: reading the expired ``alert`` again would silently begin a new transaction.
    db.session.rollback()
    sent = list(job.payload.get("sent") or [])
    channels = configured_channels(settings)
    if not channels:
        # Recorded and shown on the pages; with nowhere to send it, the job is simply done.
        log.info("alert %s (%s) recorded; no alert channel is configured to send it", alert_id, subject)
    failures = []
    for channel in channels:
        if channel in sent:
            continue
        try:
            send_recorded(channel, settings, subject, text)
        except ChannelError as error:
            failures.append(error)
            log.warning("alert %s not sent by %s", alert_id, error)
            metrics.alert_delivery(channel, "failed")
            continue
        metrics.alert_delivery(channel, "sent")
        sent.append(channel)
        _record_sent(job, sent)
    if failures:
        message = "; ".join(str(f) for f in failures)
        if all(isinstance(f, ChannelConfigError) for f in failures):
            raise jobs.Permanent(message)
        raise ChannelError(message)
    with write_transaction():
        if channels:
            db.session.execute(update(Alert).where(Alert.id == alert_id).values(sent_at=utcnow()))
        if not jobs.complete(job):
            raise RuntimeError("lost the job's lease; another worker finishes it")


def send_without_database(settings, marker_folder, kind, subject, text, params=None, now=None):
    """A message when the database itself cannot be reached (and so no alert row, no job): sent
    at once to every channel, in ALERT_LANGUAGE, once per alert window and host. The marker is a
    file made exclusively in ``marker_folder`` (the instance folder's alerts/), so of the
    processes on one host that notice, one sends; another host sends its own. Never raises."""
    now = now or utcnow()
    try:
        folder = os.path.join(marker_folder, "alerts")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        marker = os.path.join(folder, f"{kind}-{window_key(now).replace('/', '_').replace(':', '')}")
        try:
            os.close(create_private(marker))
        except FileExistsError:
            return False
        gettext, zone = translator(alert_language(settings)), display_zone(settings)
        values = _inert_params({**(params or {}), "zone": zone_label(zone)})
        subject_text, body = render(Text(subject, values), gettext, zone), render(Text(text, values), gettext, zone)
        for channel in configured_channels(settings):
            try:
                send(channel, settings, subject_text, body)
                metrics.alert_delivery(channel, "sent")
            except ChannelError as error:
                metrics.alert_delivery(channel, "failed")
                log.warning("%s not sent by %s", kind, error)
        return True
    except Exception:  # noqa: BLE001  an alert about an outage must not add to it
        log.exception("could not send the %s message", kind)
        return False


def worker_cannot_reach_the_database(error):
    """The worker's outage, once it has lasted a minute (worker.OUTAGE_REPORT_S)."""
    database_unreachable(settings_of(current_app), current_app.instance_path, "worker", error)


UNREACHABLE = {
    "worker": N_(
        "The background worker on %(host)s cannot reach the database (%(error)s): no job runs until it is back."
    ),
    "web": N_(
        "The web server on %(host)s cannot reach the database (%(error)s). The marketplace's calls are answered "
        "000005 and retried by it; nothing can be recorded until the database is back."
    ),
}


def database_unreachable(settings, marker_folder, who, error, now=None):
    """The database cannot be reached from ``who`` ("web" or "worker"): said directly."""
    return send_without_database(
        settings,
        marker_folder,
        "database_unreachable",
        N_("The database cannot be reached"),
        UNREACHABLE[who],
        {"host": socket.gethostname(), "error": type(error).__name__},
        now,
    )


def _record_sent(job, sent):
    job.payload = {**job.payload, "sent": list(sent)}
    with write_transaction():
        db.session.execute(
            update(Job)
            .where(Job.id == job.id, Job.locked_by == job.worker, Job.state == JobState.RUNNING)
            .values(payload=job.payload)
        )


# --- command ---------------------------------------------------------------------------------------


@click.command("alert-test")
@with_appcontext
def alert_test_command():
    """Send a test alert now to every configured channel (not through the queue)."""
    settings = settings_of(current_app)
    channels = configured_channels(settings)
    if not channels:
        click.echo(
            "no alert channel is configured: set ALERT_EMAIL_TO (and ALERT_SMTP_*), ALERT_WECOM_URL, "
            "ALERT_DINGTALK_URL or ALERT_FEISHU_URL",
            err=True,
        )
        raise SystemExit(1)
    failed = 0
    for channel in channels:
        try:
            send_test(channel, settings)
            click.echo(f"{channel}: ok")
        except ChannelError as error:
            failed += 1
            message = str(error)
            click.echo(message if message.startswith(f"{channel}:") else f"{channel}: {message}")
    if failed:
        raise SystemExit(1)


def send_test(channel, settings, by=None):
    """Send one test message to ``channel`` now (not through the queue), in ALERT_LANGUAGE: from
    `isvapp alert-test`, or from the alerts page when ``by`` (the admin who clicked) is given.
    Returns the channel's answer as :func:`send_recorded` keeps it, raises ChannelError; recorded
    as the channel's last delivery or failure, marked as a test."""
    zone, gettext = display_zone(settings), translator(alert_language(settings))
    if by is None:
        test = Text.of(
            N_(
                "A test alert from isvapp, sent at %(sent_at)s %(zone)s by `.venv/bin/isvapp alert-test`. Alerts reach you here."
            ),
            sent_at=utcnow(),
            zone=zone_label(zone),
        )
    else:
        test = Text.of(
            N_(
                "A test alert from isvapp, sent at %(sent_at)s %(zone)s by %(admin)s from the Alerts page. "
                "Alerts reach you here."
            ),
            sent_at=utcnow(),
            zone=zone_label(zone),
            admin=inert(by, 64),
        )
    return send_recorded(channel, settings, gettext(N_("Test alert")), render(test, gettext, zone), test=True)


def register_jobs(registry):
    """The alert job, the disk check (a periodic task), the dead-job alert and the worker's
    database outage (isvapp/__init__.py, register_jobs)."""
    registry.periodic(check_disk_periodically)
    registry.watch_dead(alert_dead_job)
    registry.watch_outage(worker_cannot_reach_the_database)
    registry.handler("alert", deliver)
    registry.handler(DIRECT_JOB, deliver)  # the same delivery, run by the web processes' watchdog


def init_app(app):
    app.cli.add_command(alert_test_command)
