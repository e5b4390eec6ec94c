"""The alert channels: e-mail (SMTP), WeCom, DingTalk and Feishu group robots, each a client
that sends one message (:func:`send`), and each channel's last delivery and failure, kept for the
alerts page (:func:`send_recorded`, :func:`channel_states`). What to send, and when, is alerts.py's.

Channels never put a secret (SMTP password, DingTalk/Feishu secret, a robot URL's key) in an
exception message or a log line: errors name the channel, and any configured secret that would
still appear in a server's answer is masked.
"""

import base64
import hashlib
import hmac
import json
import logging
import re
import smtplib
import ssl
import time
import urllib.parse
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from .. import outbound
from ..extensions import db
from ..settings import value_of
from ..texts import N_
from . import status

# The channels' lines keep the logger they always had: a deployment's log settings name it.
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


# --- the clients --------------------------------------------------------------------------------------


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
    """POST ``body`` as JSON through outbound.exchange (no redirects, TIMEOUT_S in all, strict TLS,
    plain http only to an address of this host); returns the JSON answer."""
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    try:
        status, raw = outbound.exchange(request, TIMEOUT_S, ANSWER_LIMIT, channel)
    except outbound.Unanswered as error:  # never the URL: it holds the robot's key
        if error.kind == "redirect":
            raise ChannelError(f"{channel}: answered HTTP {error.status} (a redirect, not followed)") from None
        raise ChannelError(_mask(error, settings)) from None  # "<channel>: what happened"
    if not 200 <= status < 300:
        raise ChannelError(f"{channel}: answered HTTP {status} (not 2xx)")
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
