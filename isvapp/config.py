"""Configuration defaults and the one place configuration is read and typed.

Order: these defaults, then ``instance/config.py``, then ``ISVAPP_<KEY>`` environment variables.
Flask's prefixed-env loader parses values as JSON, so a numeric-looking key arrives as an int:
:func:`load_settings` coerces every value to the type the code expects.
"""

import os
from dataclasses import dataclass
from datetime import timedelta

from .texts import N_, Text

DEFAULTS = {
    "SECRET_KEY": None,
    "SQLALCHEMY_DATABASE_URI": None,  # None: an SQLite file in the instance folder
    # The largest body each kind of route reads, in bytes, chunked bodies included
    # (isvapp/inbound.py): Flask's own cap, for any route not named there...
    "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
    # ...the marketplace's basic interfaces (/produce, /license): a few hundred bytes each...
    "KOO_MAX_BODY_BYTES": 1024 * 1024,
    # ...Kit sync (None: MAX_CONTENT_LENGTH): a 50,000-department allOrgSync is about 5 MiB...
    "KOO_KIT_MAX_BODY_BYTES": None,
    # ...the License relay (a code, an account and an address), the entitlement and usage API
    # (one usage record), the merchant's pages (a form), the buyer's login (a logout form).
    "LICENSE_RELAY_MAX_BODY_BYTES": 4096,
    "API_MAX_BODY_BYTES": 64 * 1024,
    "ADMIN_MAX_BODY_BYTES": 64 * 1024,
    "LOGIN_MAX_BODY_BYTES": 16 * 1024,
    "SQLITE_BUSY_TIMEOUT_S": 3,
    # Pages the write-ahead log may hold before a commit copies it into the database file (SQLite's
    # own default is 1,000; isvapp.storage.connections says why more).
    "SQLITE_WAL_AUTOCHECKPOINT": 10_000,
    # Each SQLite connection's page cache, in MiB (SQLite's own is 2 MiB; isvapp.storage.connections
    # says why more).
    "SQLITE_CACHE_MIB": 64,
    # The Seller Console's Key; several (a list, or text separated by commas or spaces) when several
    # products with different keys point at this server, or while a key is being rotated.
    "KOO_ACCESS_KEY": None,
    "KOO_KIT_ACCESS_KEY": None,
    # An instance, license or Kit tenant belongs to the key that created it: a request another key
    # verified is answered as if it did not exist. True lets every configured key act on every
    # row: for a key rotation, while the new key takes over the old one's instances.
    "KOO_SHARE_INSTANCES_ACROSS_KEYS": False,
    "KOO_KIT_RSA_PRIVATE_KEY": None,  # None: instance/kit_rsa_private.pem (`.venv/bin/isvapp kit-keygen`)
    "KOO_ENCRYPT_TYPE": "1",
    "KOO_SIGNATURE_WINDOW_S": 60,
    # G1 has no nonce: its timeStamp must be this close to now. Generous, because the marketplace
    # retries for hours and a G1 timeStamp may be written in Beijing time instead of UTC.
    "KOO_G1_WINDOW_S": 24 * 3600,
    # V2 (G2, License-2.0) appInfo: the current queryInstance page defines userName/password as
    # plain text with no encryptType; False encrypts them as G1 does (encryptType in each info).
    "KOO_V2_PLAINTEXT_APPINFO": True,
    # G1 chargingMode values that mean pay-per-use (one instance per order *and* product). The
    # reference leaves G1's integer values open; an order with no expireTime that is not one-time
    # (chargingMode 3 / ONE_TIME) is treated as pay-per-use as well.
    "KOO_G1_PAY_PER_USE_MODES": "ON_DEMAND,ON_DEMAND_PKG",
    # queryInstance's field, in each info element, for a pay-per-use or package instance's usage
    # (UsageInfo: usageValue, and relatedInstanceId for a package). The page names the element but
    # not its field: "" leaves usage out.
    "KOO_QUERY_USAGE_FIELD": "usageInfo",
    "KOO_API_BASE_URL": "https://mkt.myhuaweicloud.com",
    "KOO_AK": None,
    "KOO_SK": None,
    "KOO_API_TIMEOUT_S": 3,  # order query / usage push; the reference asks for at most 3 s
    "KOO_USAGE_KEY": None,  # usage push signature key (§3.8); defaults to KOO_ACCESS_KEY
    # Usage whose beginTime is older than this many days is refused when it is recorded: the
    # marketplace refuses it (MKT.9004, docs/protocol.md §5.2), and a push carries whole batches.
    "USAGE_MAX_AGE_DAYS": 21,
    # Usage records per push. The push pages allow 1,000 UsagePushData; the order query's error
    # page says MKT.9003 past 100 (计量记录数超出限制(100条)): 100 holds under both (§5.2).
    "KOO_USAGE_PUSH_BATCH": 100,
    # Where every open-API call is tried again when KOO_API_BASE_URL does not answer (the License
    # pages: "mkt.myhuaweicloud.com域名不可用时请使用mkt.myhuaweicloud.cn进行重试"; the intl usage
    # push page: "If mkt-intl.myhuaweicloud.com is unavailable, try mkt.myhuaweicloud.cn."). None:
    # that .cn domain while KOO_API_BASE_URL is either of those, no backup otherwise; "" turns it off.
    "KOO_API_BACKUP_URL": None,
    # License codes (授权码, docs/protocol.md §13). The v2 query's field for its batch of codes,
    # which no stored page shows.
    "KOO_LICENSE_QUERY_V2_FIELD": "licenses",
    # The upload of a getLicenseAsync license (字符串/文件流上传): "file" (multipart, the document as
    # a file part) or "string" (multipart, the document as a text part); the part's name; a limit.
    "KOO_LICENSE_UPLOAD_MODE": "file",
    "KOO_LICENSE_UPLOAD_FIELD": "file",
    "KOO_LICENSE_UPLOAD_MAX_BYTES": 5 * 1024 * 1024,
    # The relay the merchant's installed software calls (docs/license-relay.md): while the
    # marketplace cannot be reached, the last verified state is served for this many hours...
    "LICENSE_RELAY_GRACE_H": 72,
    # ...and each license code may make this many relay calls a minute (every worker and host), and
    # each client address this many (an IPv6 address: its /64), whatever the codes.
    "LICENSE_RELAY_PER_MINUTE": 30,
    "LICENSE_RELAY_PER_ADDRESS_MINUTE": 120,
    # Provisioning hooks: "module:Class" (see isvapp/background/provisioning.py); WEBHOOK_* for the webhook one.
    "PROVISIONER": "isvapp.provisioning:TemplateProvisioner",
    "WEBHOOK_URL": None,
    "WEBHOOK_SECRET": None,
    "WEBHOOK_TIMEOUT_S": 10,  # one delivery, answer included; redirects are failures, https required
    # Background jobs: attempts before a job is dead, and the backoff between them.
    "JOB_MAX_ATTEMPTS": 12,
    "JOB_RETRY_BASE_S": 5,
    "JOB_RETRY_MAX_S": 3600,
    "JOB_LEASE_S": 60,
    "DISPLAY_TIMEZONE": "Asia/Shanghai",
    # The go-live page's checklists: period (yearly/monthly), onetime, payperuse, license, kit.
    # Kinds the marketplace has sent debugging calls for are added by themselves.
    "GO_LIVE_PRODUCTS": "period",
    # License products: the Ed25519 key that signs license documents (None: instance folder's
    # license_ed25519.pem, made on first use), or a "module:function" that makes the license text.
    "LICENSE_SIGNING_KEY": None,
    "LICENSE_GENERATOR": None,
    "APP_FRONTEND_URL_TEMPLATE": "https://app.example.com/t/{instance_id}",
    "APP_ADMIN_URL_TEMPLATE": "https://app.example.com/t/{instance_id}/admin",
    "APP_ADMIN_USER_TEMPLATE": "admin",
    "APP_MEMO": "",
    "CALLBACK_LOG_RETENTION_DAYS": 90,
    # Requests that fail verification are logged (metadata, 256 bytes of query string, 512 of body)
    # at most this often per client address (an IPv6 address: its /64), minute and worker...
    "CALLBACK_REFUSED_PER_MINUTE": 20,
    # ...and at most this often a minute for all addresses together, across every worker and host
    # (a counter row in the database). The rest are counted, not stored.
    "CALLBACK_REFUSED_GLOBAL_PER_MINUTE": 120,
    "PRUNE_EVERY_H": 24,
    # Behind nginx (or another proxy) on the same host: 1, so the pages see https and the client's
    # address from X-Forwarded-Proto/-For. Left at 0 without a proxy (the headers could be forged).
    "PROXY_FIX_HOPS": 0,
    # The merchant's pages: a session ends after this many minutes without a page opened, and in
    # any case PERMANENT_SESSION_LIFETIME (12 h) after its login.
    "SESSION_IDLE_MIN": 30,
    # Flask's own default is 31 days: set here, where it overrides it (seconds from the environment).
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
    # Alerts (isvapp/background/alerts.py): one message per kind and window; a repeat in the window counts up.
    "ALERT_WINDOW_MIN": 60,
    "ALERT_EMAIL_TO": None,  # comma-separated addresses; e-mail is off while unset
    "ALERT_SMTP_HOST": None,
    "ALERT_SMTP_PORT": None,  # None: 587 (465 with ALERT_SMTP_TLS = "ssl")
    "ALERT_SMTP_USER": None,  # None: no login
    "ALERT_SMTP_PASSWORD": None,
    "ALERT_SMTP_FROM": None,  # None: ALERT_SMTP_USER
    "ALERT_SMTP_TLS": "starttls",  # "starttls", "ssl", or "none" (to a loopback host only)
    "ALERT_WECOM_URL": None,  # WeCom group robot: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...
    "ALERT_DINGTALK_URL": None,  # DingTalk robot: https://oapi.dingtalk.com/robot/send?access_token=...
    "ALERT_DINGTALK_SECRET": None,  # the robot's "SEC..." secret when it signs (加签)
    "ALERT_FEISHU_URL": None,  # Feishu custom bot: https://open.feishu.cn/open-apis/bot/v2/hook/...
    "ALERT_FEISHU_SECRET": None,  # the bot's signature-check secret (签名校验), if set
    "ALERT_WORKER_SILENT_S": 300,  # "worker_silent" when the worker heartbeat is older than this
    # Each web process checks the worker, the disk and delivers those alerts itself this often (0: off).
    "ALERT_WATCH_EVERY_S": 30,
    "ALERT_DISK_FREE_PCT": 10,  # "disk_low" when the instance folder's disk has less free than this
    # The merchant's notices (isvapp/background/notices.py), each switched on by name: new_order,
    # release, expiring, digest (comma-separated; none by default). New orders and releases are
    # grouped into windows of ALERT_NOTICE_GROUP_MIN minutes, one message each when it closes.
    "ALERT_NOTICES": "",
    "ALERT_NOTICE_GROUP_MIN": 10,
    "ALERT_EXPIRING_DAYS": 7,  # "expiring": live instances that expire within this many days, daily
    "ALERT_DIGEST_HOUR": 9,  # "digest": sent once a day from this hour (DISPLAY_TIMEZONE)
    "ALERT_LANGUAGE": "zh",  # the language of every alert a channel receives: zh or en
    # The buyer's login for joint-operation products (isvapp/login, docs/handoff.md).
    # The exact redirect_uri registered with the app's credentials (None: this server's
    # /login/callback, as the request reached it: set it when a proxy rewrites the host).
    "LOGIN_REDIRECT_URI": None,
    # The assertion's issuer, and where its key set is served (None: this server's base URL).
    "LOGIN_ISSUER": None,
    # Where the signed-in user is handed over, unless the app has its own on the tenant's page.
    "LOGIN_HANDOFF_URL": None,
    # PKCE (S256) on the authorize request: Huawei's pages neither require nor forbid it.
    "LOGIN_PKCE": True,
    # The Ed25519 key that signs the assertions (None: instance folder's login_ed25519.pem, made
    # on first use).
    "LOGIN_SIGNING_KEY": None,
    # One IdP call (token, user info) takes at most this long; a login has at most 3 of them.
    "LOGIN_IDP_TIMEOUT_S": 5,
    # How long a login may take between leaving for the IdP and coming back.
    "LOGIN_STATE_TTL_S": 600,
    # Logins the aPaaS enterprise workbench begins (code and tenant_id, no state of ours): off by
    # default, since a login nobody started here cannot be bound to the browser.
    "LOGIN_WORKBENCH": False,
    # Development only: a tenant's IdP on this host (the fake IdP: `isvapp fake-idp`), over plain
    # http. Off, an IdP must be a public https host name: no IP address, loopback or private one.
    "LOGIN_ALLOW_LOOPBACK_IDP": False,
    # How long a buyer's session lasts (isvapp's own, for /login/refresh; logout ends it sooner).
    "LOGIN_SESSION_TTL_S": 12 * 3600,
    # Operating it (isvapp/metrics.py, isvapp/monitoring.py, isvapp/logs.py, isvapp/errorreports.py).
    # GET /metrics, Prometheus' text format: counted unless this is False (then the page is empty).
    "METRICS_ENABLED": True,
    # /metrics answers loopback without a token; any other client (or a request through a proxy)
    # must send "Authorization: Bearer <METRICS_TOKEN>", and is refused while it is unset.
    "METRICS_TOKEN": None,
    # "text" (default) or "json": one JSON object per log line (time, level, logger, message,
    # request_id). gunicorn's own lines follow ISVAPP_LOG_FORMAT in its environment.
    "LOG_FORMAT": "text",
    # Errors also go to Sentry (sentry-sdk), secrets scrubbed first; None: nothing is sent.
    "SENTRY_DSN": None,
}

DB_FILENAME = "isvapp.sqlite"


def _text(value):
    return None if value in (None, "") else str(value)


def _keys(value):
    """One key, or several: a list, or text separated by commas, spaces or new lines."""
    if value in (None, ""):
        return ()
    items = value if isinstance(value, (list, tuple)) else str(value).replace(",", " ").split()
    return tuple(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))


def is_true(value):
    """A setting read as a yes/no: from the environment it may arrive as text ("false")."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


@dataclass(frozen=True)
class Settings:
    """The marketplace-facing settings, typed; views pass this down instead of reading config."""

    access_key: str | None  # the first configured key, or the one that verified this request
    kit_access_key: str | None
    kit_rsa_private_key: str | None
    encrypt_type: str
    signature_window_s: int
    v2_plaintext_appinfo: bool
    secret_key: str | None
    frontend_url_template: str
    admin_url_template: str
    admin_user_template: str
    app_memo: str
    g1_pay_per_use_modes: frozenset = frozenset()
    license_signing_key: str | None = None
    license_generator: str | None = None
    access_keys: tuple = ()
    kit_access_keys: tuple = ()
    g1_window_s: int = 24 * 3600
    api_base_url: str = ""
    api_ak: str | None = None
    api_sk: str | None = None
    api_timeout_s: float = 3.0
    usage_key: str | None = None
    share_instances_across_keys: bool = False
    api_backup_url: str = ""
    license_query_v2_field: str = "licenses"
    license_upload_mode: str = "file"
    license_upload_field: str = "file"
    license_upload_max_bytes: int = 5 * 1024 * 1024
    relay_grace_s: int = 72 * 3600
    relay_per_minute: int = 30
    relay_per_address_minute: int = 120
    query_usage_field: str = "usageInfo"
    usage_max_age_days: int = 21
    usage_push_batch: int = 100


MAIN_API_URL, BACKUP_API_URL = "https://mkt.myhuaweicloud.com", "https://mkt.myhuaweicloud.cn"
INTL_API_URL = "https://mkt-intl.myhuaweicloud.com"
# The main domains whose pages name mkt.myhuaweicloud.cn as the backup: the China pages (License,
# usage push) for mkt.myhuaweicloud.com, and the international "Pushing the Pay-per-Use Resource
# Usage (New)" (topic_0070649117) for mkt-intl: "If mkt-intl.myhuaweicloud.com is unavailable,
# try mkt.myhuaweicloud.cn." No page names one for the EU site (docs/protocol.md §13.1).
BACKED_UP_API_URLS = (MAIN_API_URL, INTL_API_URL)


def _backup_url(config, main):
    value = config.get("KOO_API_BACKUP_URL")
    if value is None:
        return BACKUP_API_URL if main in BACKED_UP_API_URLS else ""
    return str(value).rstrip("/")


@dataclass(frozen=True)
class LoginSettings:
    """The buyer's login, typed (isvapp/login)."""

    redirect_uri: str | None
    issuer: str | None
    handoff_url: str | None
    pkce: bool
    signing_key: str
    idp_timeout_s: float
    state_ttl_s: int
    workbench: bool = False
    allow_loopback_idp: bool = False
    session_ttl_s: int = 12 * 3600


def login_settings(config):
    return LoginSettings(
        redirect_uri=_text(config.get("LOGIN_REDIRECT_URI")),
        issuer=(_text(config.get("LOGIN_ISSUER")) or "").rstrip("/") or None,
        handoff_url=_text(config.get("LOGIN_HANDOFF_URL")),
        pkce=is_true(config.get("LOGIN_PKCE")),
        signing_key=str(config["LOGIN_SIGNING_KEY"]),
        idp_timeout_s=min(float(config.get("LOGIN_IDP_TIMEOUT_S") or 5), 10.0),
        state_ttl_s=int(config.get("LOGIN_STATE_TTL_S") or 600),
        workbench=is_true(config.get("LOGIN_WORKBENCH")),
        allow_loopback_idp=is_true(config.get("LOGIN_ALLOW_LOOPBACK_IDP")),
        session_ttl_s=int(config["LOGIN_SESSION_TTL_S"]),
    )


@dataclass(frozen=True)
class OperationSettings:
    """Metrics, logs and error reports, typed (isvapp/monitoring.py, isvapp/logs.py)."""

    metrics_enabled: bool
    metrics_token: str | None
    log_format: str
    sentry_dsn: str | None


def operation_settings(config):
    return OperationSettings(
        metrics_enabled=is_true(config.get("METRICS_ENABLED")),
        metrics_token=_text(config.get("METRICS_TOKEN")),
        log_format=_choice(config, "LOG_FORMAT", ("text", "json")),
        sentry_dsn=_text(config.get("SENTRY_DSN")),
    )


def load_settings(config):
    access_keys = _keys(config.get("KOO_ACCESS_KEY"))
    kit_access_keys = _keys(config.get("KOO_KIT_ACCESS_KEY")) or access_keys
    access_key = access_keys[0] if access_keys else None
    encrypt_type = str(config.get("KOO_ENCRYPT_TYPE") or "1")
    if encrypt_type not in ("1", "2"):
        raise ValueError(f"KOO_ENCRYPT_TYPE must be 1 or 2, not {encrypt_type!r}")
    return Settings(
        access_key=access_key,
        kit_access_key=kit_access_keys[0] if kit_access_keys else None,
        access_keys=access_keys,
        kit_access_keys=kit_access_keys,
        g1_window_s=int(config.get("KOO_G1_WINDOW_S") or 24 * 3600),
        kit_rsa_private_key=_text(config.get("KOO_KIT_RSA_PRIVATE_KEY")),
        encrypt_type=encrypt_type,
        signature_window_s=int(config.get("KOO_SIGNATURE_WINDOW_S") or 60),
        v2_plaintext_appinfo=is_true(config.get("KOO_V2_PLAINTEXT_APPINFO")),
        secret_key=_text(config.get("SECRET_KEY")),
        frontend_url_template=str(config.get("APP_FRONTEND_URL_TEMPLATE") or ""),
        admin_url_template=str(config.get("APP_ADMIN_URL_TEMPLATE") or ""),
        admin_user_template=str(config.get("APP_ADMIN_USER_TEMPLATE") or "admin"),
        app_memo=str(config.get("APP_MEMO") or ""),
        g1_pay_per_use_modes=frozenset(
            m.strip() for m in str(config.get("KOO_G1_PAY_PER_USE_MODES") or "").split(",") if m.strip()
        ),
        license_signing_key=_text(config.get("LICENSE_SIGNING_KEY")),
        license_generator=_text(config.get("LICENSE_GENERATOR")),
        api_base_url=str(config.get("KOO_API_BASE_URL") or "").rstrip("/"),
        api_ak=_text(config.get("KOO_AK")),
        api_sk=_text(config.get("KOO_SK")),
        api_timeout_s=min(float(config.get("KOO_API_TIMEOUT_S") or 3), 3.0),
        usage_key=_text(config.get("KOO_USAGE_KEY")) or access_key,
        share_instances_across_keys=is_true(config.get("KOO_SHARE_INSTANCES_ACROSS_KEYS")),
        api_backup_url=_backup_url(config, str(config.get("KOO_API_BASE_URL") or "").rstrip("/")),
        license_query_v2_field=str(config.get("KOO_LICENSE_QUERY_V2_FIELD") or "licenses"),
        license_upload_mode=_choice(config, "KOO_LICENSE_UPLOAD_MODE", ("file", "string")),
        license_upload_field=str(config.get("KOO_LICENSE_UPLOAD_FIELD") or "file"),
        license_upload_max_bytes=int(config.get("KOO_LICENSE_UPLOAD_MAX_BYTES") or 5 * 1024 * 1024),
        relay_grace_s=int(float(config.get("LICENSE_RELAY_GRACE_H") or 0) * 3600),
        relay_per_minute=int(config.get("LICENSE_RELAY_PER_MINUTE") or 30),
        relay_per_address_minute=int(config.get("LICENSE_RELAY_PER_ADDRESS_MINUTE") or 120),
        usage_max_age_days=int(config.get("USAGE_MAX_AGE_DAYS") or 21),
        usage_push_batch=min(max(int(config.get("KOO_USAGE_PUSH_BATCH") or 100), 1), 1000),
        query_usage_field=str(
            config.get("KOO_QUERY_USAGE_FIELD") if config.get("KOO_QUERY_USAGE_FIELD") is not None else "usageInfo"
        ),
    )


def _choice(config, key, allowed):
    value = str(config.get(key) or allowed[0]).strip().lower()
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}, not {value!r}")
    return value


# SECRET_KEY signs the pages' session cookies: a guessable one lets anyone forge an admin session.
MIN_SECRET_KEY_LENGTH = 32
PLACEHOLDER_SECRET_KEYS = {
    "change-me",
    "changeme",
    "secret",
    "dev",
    "development",
    "test",
    "...",
    "xxx",
    "please-change-me",
    "your-secret-key",
}


def secret_key_problem_text(value):
    """Why SECRET_KEY is not fit to serve with, as a text the pages translate (isvapp.texts), or None."""
    text = str(value or "").strip()
    if not text:
        return Text(
            N_(
                "SECRET_KEY is not set: run `.venv/bin/isvapp init-config` to write one into instance/config.py, "
                "or set ISVAPP_SECRET_KEY to the output of `python3 -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        )
    if text.lower() in PLACEHOLDER_SECRET_KEYS:
        return Text(
            N_(
                "SECRET_KEY is the placeholder %(value)s: run `.venv/bin/isvapp init-config` to write one into "
                "instance/config.py, or set ISVAPP_SECRET_KEY to the output of "
                "`python3 -c 'import secrets; print(secrets.token_hex(32))'`"
            ),
            {"value": repr(text)},
        )
    if len(text) < MIN_SECRET_KEY_LENGTH or len(set(text)) < 8:
        return Text(
            N_(
                "SECRET_KEY is too short or too plain (at least %(length)s varied characters): run "
                "`.venv/bin/isvapp init-config` to write one into instance/config.py, or set ISVAPP_SECRET_KEY "
                "to the output of `python3 -c 'import secrets; print(secrets.token_hex(32))'`"
            ),
            {"length": MIN_SECRET_KEY_LENGTH},
        )
    return None


def secret_key_problem(value):
    """Why SECRET_KEY is not fit to serve with, in English (a log line), or None."""
    problem = secret_key_problem_text(value)
    return problem.english if problem else None


LICENSE_KEY_FILENAME = "license_ed25519.pem"
LOGIN_KEY_FILENAME = "login_ed25519.pem"
KIT_RSA_KEY_FILENAME = "kit_rsa_private.pem"
# The private keys kept in files: each setting, and its file in the instance folder when unset.
KEY_FILES = {
    "LICENSE_SIGNING_KEY": LICENSE_KEY_FILENAME,
    "KOO_KIT_RSA_PRIVATE_KEY": KIT_RSA_KEY_FILENAME,
    "LOGIN_SIGNING_KEY": LOGIN_KEY_FILENAME,
}


def default_database_uri(instance_path):
    return "sqlite:///" + os.path.join(os.path.abspath(instance_path), DB_FILENAME)


def configure(config, instance_path, test_config=None, config_file="config.py", environment=True):
    """Fill ``config`` (a flask.Config on the instance folder) as the server reads it: these
    defaults, then ``config_file`` (instance/config.py), then ISVAPP_* environment variables (unless
    ``environment`` is False); or the defaults and ``test_config``. The database and the key files
    default to the instance folder. `isvapp restore` reads a restored config.py through it too."""
    config.from_mapping(DEFAULTS)
    if test_config is None:
        config.from_pyfile(config_file, silent=True)
        if environment:
            config.from_prefixed_env("ISVAPP")
    else:
        config.from_mapping(test_config)
    if not config["SQLALCHEMY_DATABASE_URI"]:
        config["SQLALCHEMY_DATABASE_URI"] = default_database_uri(instance_path)
    for name, filename in KEY_FILES.items():
        if not config[name]:
            config[name] = os.path.join(instance_path, filename)
    return config
