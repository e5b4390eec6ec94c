"""Errors to Sentry, when SENTRY_DSN is set, with secrets scrubbed before anything leaves.

sentry-sdk (``pip install 'isvapp[sentry]'``) with its Flask integration, which adds the request
to an event, and its logging integration, which makes an event of every line logged at ERROR
with its traceback: isvapp logs each unexpected error so (a page's or an API's 500, a marketplace
answer 000005, a job that failed). Local variables are never sent (a frame may hold a key or a
buyer's password), nor the user's address or cookies (``send_default_pii`` off).

Before an event is sent, :class:`Scrubber` removes what could be a secret, wherever in the event
it is (the request, the exception's text, the breadcrumbs of earlier log lines and HTTP calls):

- every field whose name says secret: keys, passwords, tokens, cookies, Authorization headers,
  signatures (x-sign), sessions, CSRF tokens;
- the ``signature`` and ``authToken`` query parameters (and any secret-named one) in any text;
- the body of a marketplace request (its fields are the marketplace's, and a Kit body carries
  a client secret);
- the value of every setting named *KEY*, *SECRET*, *PASSWORD*, *TOKEN*, *DSN* (and KOO_SK, the
  robots' URLs, which hold their keys, and a database URI's password), and of the request's own
  Authorization, Cookie and signature values, wherever they appear in the event's text.
"""

import logging
import re
from urllib.parse import urlsplit

from flask import has_request_context, request

from .settings import settings_of

log = logging.getLogger("isvapp.errorreports")

FILTERED = "[Filtered]"
SECRET_FIELD = re.compile(
    r"(?i)key|secret|passw|token|dsn|cookie|authori[sz]ation|signature|x-sign|session|csrf|credential"
)
SECRET_SETTING = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|DSN|(?:^|_)SK$")
SECRET_URL_SETTINGS = ("ALERT_WECOM_URL", "ALERT_DINGTALK_URL", "ALERT_FEISHU_URL", "WEBHOOK_URL")
_SECRET_PARAMETER = re.compile(
    r"(?i)\b(signature|authtoken|x-sign|token|access_token|refresh_token|password|secret|sign|key|code)=[^&\s\"'<>]*"
)
SHORTEST_SECRET = 6  # shorter values (a "1", "true") would blank innocent text


def _setting_secrets(config):
    """Every value in ``config`` whose name says secret: the declared settings' and any other a
    merchant's own hook reads (so the mapping is scanned, not isvapp.settings' sections)."""
    values = []
    for name, value in config.items():
        if not isinstance(name, str) or value in (None, ""):
            continue
        if SECRET_SETTING.search(name) or name in SECRET_URL_SETTINGS:
            items = value if isinstance(value, (list, tuple)) else str(value).replace(",", " ").split() + [str(value)]
            values += [str(item).strip() for item in items]
        elif name == "SQLALCHEMY_DATABASE_URI" and "://" in str(value):
            password = urlsplit(str(value)).password
            if password:
                values.append(password)
    return values


def _request_secrets():
    """The request's own secrets, read from the request being served (Sentry's copy has its
    Authorization and Cookie already removed, but the exception's text may still quote them):
    the bearer token, every cookie's value, secret-named headers and query parameters."""
    if not has_request_context():
        return []
    values = [value for name, value in request.headers.items() if SECRET_FIELD.search(name)]
    values += [value.split()[-1] for value in values if value.split()]
    values += list(request.cookies.values())
    values += [value for name, value in request.args.items(multi=True) if SECRET_FIELD.search(name) or name == "sign"]
    return values


class Scrubber:
    """Sentry's ``before_send``: the event without secrets (see the module's docstring)."""

    def __init__(self, config, is_marketplace_path):
        self.config, self.is_marketplace_path = config, is_marketplace_path

    def __call__(self, event, hint=None):
        described = event.get("request")
        secrets = _setting_secrets(self.config) + _request_secrets()
        if isinstance(described, dict) and self.is_marketplace_path(urlsplit(str(described.get("url") or "")).path):
            described.pop("data", None)
        ordered = sorted({s for s in secrets if len(s) >= SHORTEST_SECRET}, key=len, reverse=True)
        return _scrub(event, ordered)


def _scrub(value, secrets):
    if isinstance(value, dict):
        return {
            key: FILTERED if isinstance(key, str) and SECRET_FIELD.search(key) and item else _scrub(item, secrets)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_scrub(item, secrets) for item in value]
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, FILTERED)
        if "=" in value:
            value = _SECRET_PARAMETER.sub(lambda m: m.group(1) + "=" + FILTERED, value)
        return value
    return value


def init_app(app, is_marketplace_path):
    """Start reporting to Sentry when SENTRY_DSN is set (once per process: sentry-sdk's client is
    the process's)."""
    dsn = settings_of(app).ops.sentry_dsn
    if not dsn:
        return
    try:
        import sentry_sdk
        from sentry_sdk.integrations.flask import FlaskIntegration
    except ImportError:
        log.error("SENTRY_DSN is set but sentry-sdk is not installed: pip install 'isvapp[sentry]'")
        return
    sentry_sdk.init(
        dsn=dsn,
        integrations=[FlaskIntegration()],
        # Only the default integrations and Flask's: no SQLAlchemy hooks on the marketplace's path,
        # no breadcrumbs of statements.
        auto_enabling_integrations=False,
        send_default_pii=False,
        include_local_variables=False,
        before_send=Scrubber(app.config, is_marketplace_path),
        traces_sample_rate=None,  # errors only: no tracing on the marketplace's path
    )
