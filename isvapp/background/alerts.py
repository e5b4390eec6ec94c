"""Alerts for the merchant: e-mail (SMTP), WeCom, DingTalk and Feishu group robots.

An alert is one ``Alert`` row per kind and time window (ALERT_WINDOW_MIN, default an hour): a
repeat in the same window only counts up, so a burst of failures sends one message that says how
many there were. Rows are written with the caller's transaction (``raise_alert``) or in one of
their own (``raise_alert_alone``), and delivered by an ``alert`` job, so a message is sent only
for what committed, and an unreachable channel retries with the job queue's backoff.

Repeats that arrive after the message went out still count up on the row (the dashboard shows
it) but are not sent again: the next window's first one is.

Channels never put a secret (SMTP password, DingTalk/Feishu secret, a robot URL's key) in an
exception message or a log line: errors name the channel, and any configured secret that would
still appear in a server's answer is masked.
"""

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import shutil
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from zoneinfo import ZoneInfo

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select, update

from .. import metrics, outbound
from ..extensions import db
from ..privatefiles import create_private
from ..settings import settings_of, value_of
from ..storage.models import Alert, Job, JobState, utcnow
from ..storage.statements import insert_ignore
from ..storage.transactions import write_transaction
from ..texts import N_, Text, render, translator, untranslated, zone_label
from ..throttle import Throttle
from . import jobs, status
from .registry import current as current_registry

log = logging.getLogger("isvapp.alerts")

TIMEOUT_S = 10
ANSWER_LIMIT = 64 * 1024
WECOM_CONTENT_BYTES = 2048  # WeCom's text.content limit (UTF-8 bytes)
ROBOT_CONTENT_BYTES = 4000  # DingTalk/Feishu: far below their request-size limits
CHANNELS = ("email", "wecom", "dingtalk", "feishu")


# --- texts -----------------------------------------------------------------------------------------

# Robot texts honour markup in angle brackets (Feishu notifies the whole group for
# <at user_id="all"></at> in a text message), and a line break in a field would pass for a line
# of isvapp's own. Fields keep their look: the brackets become their full-width forms.
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_MARKUP = str.maketrans({"<": "\uff1c", ">": "\uff1e"})
FIELD_LIMIT = 200


def inert(value, limit=FIELD_LIMIT):
    """A field (an order id, a product id, an address, another system's message) as a robot or
    mail text may carry it: on one line, without markup, at most ``limit`` characters. Every field
    that goes into an alert's or a notice's text goes through this."""
    text = _BREAKS.sub(" ", str(value)).translate(_MARKUP)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ChannelError(Exception):
    """A delivery failed; the message names the channel, never a secret."""


class ChannelConfigError(ChannelError):
    """The channel's settings are wrong: retrying cannot fix it."""


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
    if row.kind == "alert":
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


# --- channels --------------------------------------------------------------------------------------


def _secrets(settings):
    """Every configured secret, to mask in anything a channel reports."""
    alerts = settings.alerts
    values: list = [alerts.smtp_password, alerts.dingtalk_secret, alerts.feishu_secret]
    for url in (alerts.wecom_url, alerts.dingtalk_url, alerts.feishu_url):
        if url:
            parts = urllib.parse.urlsplit(str(url))
            values += [url, parts.query, parts.path]
            values += [v for _, v in urllib.parse.parse_qsl(parts.query)]
            values.append(parts.path.rstrip("/").rsplit("/", 1)[-1])  # Feishu's hook id
    return sorted({str(v) for v in values if v and len(str(v)) >= 6}, key=len, reverse=True)


def _mask(text, settings):
    text = str(text)
    for secret in _secrets(settings):
        text = text.replace(secret, "***")
    return text[:500]


CHANNEL_NAMES = {"email": N_("e-mail"), "wecom": N_("WeCom"), "dingtalk": N_("DingTalk"), "feishu": N_("Feishu")}
# Each channel's settings; the first one switches the channel on.
SETTINGS = {
    "email": (
        "ALERT_EMAIL_TO",
        "ALERT_SMTP_HOST",
        "ALERT_SMTP_PORT",
        "ALERT_SMTP_USER",
        "ALERT_SMTP_PASSWORD",
        "ALERT_SMTP_FROM",
        "ALERT_SMTP_TLS",
    ),
    "wecom": ("ALERT_WECOM_URL",),
    "dingtalk": ("ALERT_DINGTALK_URL", "ALERT_DINGTALK_SECRET"),
    "feishu": ("ALERT_FEISHU_URL", "ALERT_FEISHU_SECRET"),
}


def configured_channels(settings):
    """The channels with settings, in a fixed order."""
    alerts = settings.alerts
    addresses = {
        "email": ",".join(alerts.email_to),
        "wecom": alerts.wecom_url,
        "dingtalk": alerts.dingtalk_url,
        "feishu": alerts.feishu_url,
    }
    return [name for name in CHANNELS if (addresses[name] or "").strip()]


def _recipients(settings):
    return list(settings.alerts.email_to)


def send_email(settings, subject, text):
    alerts = settings.alerts
    host = (alerts.smtp_host or "").strip()
    mode = alerts.smtp_tls
    if not host:
        raise ChannelConfigError("email: ALERT_SMTP_HOST is not set")
    if mode not in ("starttls", "ssl", "none"):
        raise ChannelConfigError(f"email: ALERT_SMTP_TLS must be starttls, ssl or none, not {mode[:20]!r}")
    if mode == "none" and not outbound.is_loopback(host):
        raise ChannelConfigError(
            "email: ALERT_SMTP_TLS = none is only allowed to a loopback host "
            "(the password and the alert would cross the network in the clear)"
        )
    port = alerts.smtp_port if alerts.smtp_port is not None else 465 if mode == "ssl" else 587
    user, password = alerts.smtp_user, alerts.smtp_password
    sender = alerts.smtp_from or user or f"isvapp@{host}"
    message = EmailMessage()
    message["Subject"] = "[isvapp] " + " ".join(str(subject).split())
    message["From"], message["To"] = sender, ", ".join(_recipients(settings))
    message["Date"], message["Message-ID"] = formatdate(localtime=False), make_msgid(domain="isvapp")
    message.set_content(text)
    context = ssl.create_default_context()
    smtp: smtplib.SMTP  # SMTP_SSL is one
    try:
        if mode == "ssl":
            smtp = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT_S, context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=TIMEOUT_S)
        with smtp:
            if mode == "starttls":
                smtp.starttls(context=context)
            if user:
                smtp.login(str(user), str(password or ""))
            refused = smtp.send_message(message, from_addr=sender, to_addrs=_recipients(settings))
    except smtplib.SMTPAuthenticationError as error:
        raise ChannelError(f"email: the SMTP server refused ALERT_SMTP_USER's login ({error.smtp_code})") from None
    except smtplib.SMTPNotSupportedError as error:
        raise ChannelError(f"email: {_mask(error, settings)}") from None
    except (smtplib.SMTPException, OSError) as error:
        raise ChannelError(
            f"email: {type(error).__name__}: {_mask(error, settings)} (server {host}:{port}, {mode})"
        ) from None
    return {"server": f"{host}:{port}", "accepted": [a for a in _recipients(settings) if a not in refused]}


def _check_url(channel, setting, url):
    if outbound.is_https_or_loopback(url):
        return
    raise ChannelConfigError(f"{channel}: {setting} must be an https:// URL (plain http only to a loopback host)")


def _post_json(channel, settings, url, body):
    """POST ``body`` as JSON; returns the JSON answer. No redirects, TIMEOUT_S in all."""
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    delivery = outbound.Delivery(TIMEOUT_S)
    opener = outbound.opener_for(delivery)
    delivery.start()
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            raw = response.read(ANSWER_LIMIT)
        if delivery.expired:
            raise TimeoutError
    except urllib.error.HTTPError as error:
        error.close()
        kind = "a redirect, not followed" if 300 <= error.code < 400 else "not 2xx"
        raise ChannelError(f"{channel}: answered HTTP {error.code} ({kind})") from None
    except Exception as error:  # noqa: BLE001  never the URL: it holds the robot's key
        if delivery.expired or delivery.remaining() <= 0:
            raise ChannelError(f"{channel}: no answer within {TIMEOUT_S} s") from None
        reason = getattr(error, "reason", error)
        raise ChannelError(f"{channel}: {type(error).__name__}: {_mask(reason, settings)}") from None
    finally:
        delivery.finish()
    try:
        answer = json.loads(raw)
    except ValueError:
        raise ChannelError(
            f"{channel}: the answer is not JSON: {_mask(raw[:200].decode('utf-8', 'replace'), settings)}"
        ) from None
    if not isinstance(answer, dict):
        raise ChannelError(f"{channel}: unexpected answer {_mask(str(answer)[:200], settings)}")
    return answer


def _truncate(text, limit):
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "..."


def _robot_error(channel, settings, answer, code_key, message_key):
    raise ChannelError(
        f"{channel}: {code_key} {_mask(answer.get(code_key), settings)}: "
        f"{_mask(answer.get(message_key) or '', settings)}"
    )


def send_wecom(settings, content):
    """WeCom group robot: {"msgtype": "text", "text": {"content": ...}}; ok when errcode is 0."""
    url = str(settings.alerts.wecom_url).strip()
    _check_url("wecom", "ALERT_WECOM_URL", url)
    answer = _post_json(
        "wecom", settings, url, {"msgtype": "text", "text": {"content": _truncate(content, WECOM_CONTENT_BYTES)}}
    )
    if answer.get("errcode") != 0:
        _robot_error("wecom", settings, answer, "errcode", "errmsg")
    return answer


def dingtalk_sign(secret, timestamp_ms):
    """DingTalk's signed-secret mode: base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")), not yet URL-encoded."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def send_dingtalk(settings, content, now_ms=None):
    """DingTalk robot: {"msgtype": "text", "text": {"content": ...}}, &timestamp=&sign= when a secret is set."""
    url = str(settings.alerts.dingtalk_url).strip()
    _check_url("dingtalk", "ALERT_DINGTALK_URL", url)
    secret = (settings.alerts.dingtalk_secret or "").strip()
    if secret:
        timestamp = now_ms or int(time.time() * 1000)
        url += ("&" if urllib.parse.urlsplit(url).query else "?") + urllib.parse.urlencode(
            {"timestamp": timestamp, "sign": dingtalk_sign(secret, timestamp)}
        )
    answer = _post_json(
        "dingtalk", settings, url, {"msgtype": "text", "text": {"content": _truncate(content, ROBOT_CONTENT_BYTES)}}
    )
    if answer.get("errcode") != 0:
        _robot_error("dingtalk", settings, answer, "errcode", "errmsg")
    return answer


def feishu_sign(secret, timestamp_s):
    """Feishu's signature: base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b""))."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def send_feishu(settings, content, now_s=None):
    """Feishu custom bot: {"msg_type": "text", "content": {"text": ...}} (+ timestamp, sign); ok when code is 0."""
    url = str(settings.alerts.feishu_url).strip()
    _check_url("feishu", "ALERT_FEISHU_URL", url)
    body = {"msg_type": "text", "content": {"text": _truncate(content, ROBOT_CONTENT_BYTES)}}
    secret = (settings.alerts.feishu_secret or "").strip()
    if secret:
        timestamp = str(now_s or int(time.time()))
        body = {"timestamp": timestamp, "sign": feishu_sign(secret, timestamp), **body}
    answer = _post_json("feishu", settings, url, body)
    if "code" in answer:
        if answer["code"] != 0:
            _robot_error("feishu", settings, answer, "code", "msg")
    elif answer.get("StatusCode") != 0:
        _robot_error("feishu", settings, answer, "StatusCode", "StatusMessage")
    return answer


def send(channel, settings, subject, text):
    """Send one message to one channel; raises ChannelError (naming the channel) when it fails.
    Returns the channel's answer: a robot's JSON, or the mail server and the recipients it took."""
    try:
        if channel == "email":
            return send_email(settings, subject, text)
        content = f"[isvapp] {subject}\n\n{text}".translate(_MARKUP)  # no markup of isvapp's either
        return {"wecom": send_wecom, "dingtalk": send_dingtalk, "feishu": send_feishu}[channel](settings, content)
    except ChannelError:
        raise
    except Exception as error:  # noqa: BLE001  anything unforeseen: still no secret in the message
        raise ChannelError(f"{channel}: {type(error).__name__}: {_mask(error, settings)}") from None


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
    # No transaction held while talking to the channels. Only the plain values above are used
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


# --- each channel's last delivery and failure --------------------------------------------------------

DELIVERED, FAILED = "alert_delivered:", "alert_failed:"  # status items, + the channel's name


def send_recorded(channel, settings, subject, text, test=False):
    """:func:`send`, and the outcome kept as the channel's last delivery (with its answer) or last
    failure (with its error), for the alerts page: one status item each per channel, shared by
    every host. Keeping it never fails the sending (a database error is logged). Returns the
    answer as kept: the mail server and its recipients, or a robot's JSON as text, secrets masked."""
    try:
        answer = send(channel, settings, subject, text)
    except ChannelError as error:
        _keep(FAILED + channel, {"test": test, "error": str(error)})
        raise
    kept = answer if channel == "email" else _mask(json.dumps(answer, ensure_ascii=False), settings)
    _keep(DELIVERED + channel, {"test": test, "answer": kept})
    return kept


def _keep(name, value):
    try:
        status.report(name, value)
    except Exception:  # noqa: BLE001  the message went (or failed) either way
        db.session.rollback()
        log.warning("could not keep %s", name, exc_info=True)


def channel_states(settings):
    """Each channel, for the alerts page: its settings (name, set or not: never a value), whether
    it is on, and its last delivery and last failure as recorded by :func:`send_recorded`
    ({"at", "test", "answer"} / {"at", "test", "error"}, or None)."""
    kept = status.read(*[prefix + c for c in CHANNELS for prefix in (DELIVERED, FAILED)])
    states = []
    for channel in CHANNELS:
        last = {}
        for key, prefix in (("delivered", DELIVERED), ("failed", FAILED)):
            value, at = kept.get(prefix + channel, (None, None))
            last[key] = None if value is None else {**value, "at": at}
        states.append(
            {
                "channel": channel,
                "name": CHANNEL_NAMES[channel],
                "on": channel in configured_channels(settings),
                "settings": [(name, _is_set(value_of(settings, name))) for name in SETTINGS[channel]],
                **last,
            }
        )
    return states


def _is_set(value):
    return bool(value) if not isinstance(value, str) else bool(value.strip())


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
