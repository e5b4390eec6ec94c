"""Am I ready to publish? The go-live checklist and the configuration's health, from what was logged.

The Seller Console publishes a product only once its scenarios were debugged successfully; the
debugging calls arrive with testFlag=1, and every one is in the callback log. So each scenario's
state is read from there: the last successful debugging call, or the last failure after it with
its plain-words cause (isvapp.dashboard.diagnosis). Which checklists apply is GO_LIVE_PRODUCTS, plus any
kind of product debugging calls were seen for.

The merchant's own simulator sends testFlag=1 too, but marks its requests (isvapp.koo.simulated):
what it did is shown apart, as "simulated here" with its time, and never makes a scenario ready,
since the Seller Console has not seen it. The same split holds for what is not a marketplace call:
usage pushed and licenses uploaded for a simulated instance, license codes the simulator
activated, and the simulator's buyer login.
"""

import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import func, select, text

from .. import outbound
from ..background import channels, status, usage
from ..config import secret_key_problem_text
from ..domain import simulation
from ..extensions import db
from ..koo.signing import key_fingerprint
from ..settings import Settings
from ..storage.models import (
    Callback,
    Instance,
    Job,
    JobState,
    KitApp,
    KitUser,
    License,
    LicenseCode,
    StatusItem,
    Tenant,
    UsageRecord,
    UsageState,
    utcnow,
)
from ..texts import Text
from . import diagnosis

SAAS, LICENSE, KIT = "saas", "license", "kit"
# product type -> [(scenario, label, activities, where the calls go)]; labels are translated on the page.
CHECKLISTS: dict[str, list[tuple[str, str, tuple[str, ...], str | None]]] = {
    "period": [
        ("new", "New purchase", ("newInstance",), SAAS),
        ("query", "Instance query", ("queryInstance",), SAAS),
        ("renew", "Renewal", ("refreshInstance",), SAAS),
        ("expire", "Expiry (freeze)", ("updateInstanceStatus", "expireInstance"), SAAS),
        ("release", "Release", ("releaseInstance",), SAAS),
    ],
    "onetime": [
        ("new", "New purchase", ("newInstance",), SAAS),
        ("query", "Instance query", ("queryInstance",), SAAS),
        ("release", "Release", ("releaseInstance",), SAAS),
    ],
    "payperuse": [
        ("new", "New purchase", ("newInstance",), SAAS),
        ("query", "Instance query", ("queryInstance",), SAAS),
        ("status", "Status change", ("updateInstanceStatus", "instanceStatus"), SAAS),
        ("release", "Release", ("releaseInstance",), SAAS),
        ("usage", "Usage push", (), None),
    ],
    "license": [
        ("new", "New purchase", ("newInstance", "getLicense"), LICENSE),
        ("renew", "Renewal", ("refreshInstance", "refreshLicense"), LICENSE),
        ("expire", "Expiry", ("updateInstanceStatus", "expireLicense"), LICENSE),
        ("release", "Release", ("releaseInstance", "releaseLicense"), LICENSE),
        # The marketplace's open APIs for license codes (docs/protocol.md section 13).
        ("upload", "License upload", (), None),
        ("activation", "License-code activation", (), None),
        ("verification", "License-code query", (), None),
        ("statistics", "License usage statistics", (), None),
    ],
    "kit": [
        ("tenant", "Tenant sync", ("tenantSync",), KIT),
        ("app", "Application sync", ("applicationSync",), KIT),
        ("auth", "User authorisation sync", ("authSync",), KIT),
        ("org", "Department sync", ("singleOrgSync", "allOrgSync"), KIT),
        ("login", "Account login", (), None),
    ],
}
PRODUCT_LABELS = {
    "period": "SaaS yearly/monthly",
    "onetime": "One-time",
    "payperuse": "Pay-per-use",
    "license": "License",
    "kit": "Kit (joint operation)",
}


@dataclass
class Scenario:
    key: str
    label: str
    passed_at: object = None  # the Seller Console's (the marketplace's) last success
    failure: Callback | None = None  # the last failed debugging call after the last success
    cause: str | None = None
    simulated_at: object = None  # the last success of the merchant's own simulation: never "ready"

    @property
    def ok(self):
        return self.passed_at is not None and self.failure is None

    @property
    def simulated_only(self):
        return not self.ok and self.failure is None and self.simulated_at is not None


@dataclass
class Checklist:
    product: str
    label: str
    scenarios: list = field(default_factory=list)

    @property
    def ok(self):
        return all(s.ok for s in self.scenarios)


def _where(activities, place):
    where: list = [Callback.activity.in_(activities), Callback.test_flag.is_(True)]
    if place == KIT:
        where.append(Callback.path.contains("/produceAPI/"))
    elif place in (SAAS, LICENSE):
        where += [
            Callback.path.startswith("/produce" if place == SAAS else "/license"),
            ~Callback.path.contains("/produceAPI/"),
        ]
    return where


def _simulated(column, simulated):
    """The rows the merchant's simulation made, or (``simulated`` False) the others (NULL is not)."""
    return column.is_(True) if simulated else column.is_not(True)


def _of_instances(stamp, model, simulated, *where):
    """The latest ``stamp`` of ``model`` rows whose instance was (not) made by the simulator."""
    return (
        select(func.max(stamp))
        .join(Instance, Instance.instance_id == model.instance_id)
        .where(*where, _simulated(Instance.simulated, simulated))
    )


# Scenarios that are not a marketplace call: when they last succeeded, for the marketplace
# (simulated False) and for the merchant's simulation (True).
NOT_CALLS = {
    "usage": lambda simulated: _of_instances(
        UsageRecord.pushed_at, UsageRecord, simulated, UsageRecord.state == UsageState.PUSHED
    ),
    # a buyer through the whole login (isvapp/login); the simulator's own login is recorded apart
    "login": lambda simulated: (
        select(func.max(StatusItem.updated_at)).where(StatusItem.name == simulation.LOGIN_ITEM)
        if simulated
        else select(func.max(KitUser.last_login_at))
    ),
    # getLicenseAsync's license, at the marketplace
    "upload": lambda simulated: _of_instances(License.uploaded_at, License, simulated),
    # through the relay (docs/license-relay.md)
    "activation": lambda simulated: select(func.max(LicenseCode.activated_at)).where(
        _simulated(LicenseCode.simulated, simulated)
    ),
    "verification": lambda simulated: select(func.max(LicenseCode.verified_at)).where(
        _simulated(LicenseCode.simulated, simulated)
    ),
    "statistics": lambda simulated: select(func.max(LicenseCode.usage_reported_at)).where(
        _simulated(LicenseCode.simulated, simulated)
    ),
}


def _scenario(key, label, activities, place):
    scenario = Scenario(key, label)
    if not activities:
        scenario.passed_at = db.session.execute(NOT_CALLS[key](False)).scalar_one()
        scenario.simulated_at = db.session.execute(NOT_CALLS[key](True)).scalar_one()
        return scenario
    calls = _where(activities, place)
    scenario.simulated_at = db.session.execute(
        select(func.max(Callback.received_at)).where(
            *calls, Callback.result_code == "000000", _simulated(Callback.simulated, True)
        )
    ).scalar_one()
    where = [*calls, _simulated(Callback.simulated, False)]
    scenario.passed_at = db.session.execute(
        select(func.max(Callback.received_at)).where(*where, Callback.result_code == "000000")
    ).scalar_one()
    failed = [*where, Callback.result_code != "000000"]
    if scenario.passed_at is not None:
        failed.append(Callback.received_at > scenario.passed_at)
    scenario.failure = db.session.execute(
        select(Callback).where(*failed).order_by(Callback.received_at.desc()).limit(1)
    ).scalar_one_or_none()
    if scenario.failure is not None:
        found = diagnosis.explain(scenario.failure.result_code, scenario.failure.result_msg)
        scenario.cause = found[1] if found else None
    return scenario


def products(settings):
    """The configured product types, and any kind debugging calls were seen for."""
    chosen = [p for p in settings.pages.go_live_products if p in CHECKLISTS]
    seen = {
        "license": _where(CHECKLISTS["license"][0][2], LICENSE),
        "kit": _where(("tenantSync",), KIT),
        "payperuse": _where(("instanceStatus",), SAAS),
    }
    for product, where in seen.items():
        if product not in chosen and db.session.execute(select(Callback.id).where(*where).limit(1)).first():
            chosen.append(product)
    return chosen or ["period"]


def checklists(settings):
    return [Checklist(p, PRODUCT_LABELS[p], [_scenario(*item) for item in CHECKLISTS[p]]) for p in products(settings)]


# --- the configuration's health -------------------------------------------------------------------


@dataclass
class Health:
    """One row of the configuration's health. ``label``, ``state``, ``detail`` and ``fix`` are msgids
    (literals here, so i18n.python_msgids hands them to the catalog), ``params`` the values of their
    ``%(name)s`` parameters: the page renders them in its reader's language (isvapp.texts)."""

    key: str
    label: str
    state: str  # ok | warn | bad
    detail: str = ""
    fix: str = ""
    params: dict = field(default_factory=dict)

    def text(self, msgid):
        return Text(msgid, self.params)


@dataclass
class Look:
    """What every check may look at: the app, its settings, the time, the address this page's own
    request came from before any proxy header was applied (the view knows it; this module does not
    read the request), and the status the worker and the commands reported (read once)."""

    app: Flask
    settings: Settings
    now: datetime
    page_client: str | None = None
    _reported: dict | None = None

    @property
    def reported(self):
        if self._reported is None:
            self._reported = status.read("worker_heartbeat", "order_query", "backup")
        return self._reported

    def age_s(self, name):
        """Seconds since ``name`` was reported, or None when it never was."""
        moment = self.reported.get(name, (None, None))[1]
        return None if moment is None else (self.now - moment).total_seconds()


def health(app, settings, now=None, page_client=None):
    """The configuration's health: each check's row, in CHECKS' order (a check with nothing to
    say gives none)."""
    look = Look(app, settings, now or utcnow(), page_client)
    return [row for check in CHECKS if (row := check(look)) is not None]


def keys_check(look):
    settings = look.settings
    keys = [key_fingerprint(k) for k in settings.access_keys]
    kit_keys = [key_fingerprint(k) for k in settings.kit_access_keys if k not in settings.access_keys]
    return Health(
        "keys",
        "Keys configured",
        "ok" if keys else "bad",
        "%(keys)s" if keys else "none",
        "" if keys else "Set KOO_ACCESS_KEY to the Key the Seller Console shows for this product.",
        {"keys": ", ".join(keys + [f"Kit {k}" for k in kit_keys])},
    )


def unowned_check(look):
    instances, tenants = _unowned()
    return Health(
        "unowned",
        "Instances without an owning key",
        "warn" if instances or tenants else "ok",
        "%(instances)s instances, %(tenants)s Kit tenants: usable by every key" if instances or tenants else "none",
        "Made before instances were tied to the key that created them: any configured key may "
        "act on them. Only a concern when several products share this server."
        if instances or tenants
        else "",
        {"instances": instances, "tenants": tenants},
    )


def shared_check(look):
    if not look.settings.share_instances_across_keys:
        return None
    return Health(
        "shared",
        "Instances shared across keys",
        "warn",
        "KOO_SHARE_INSTANCES_ACROSS_KEYS is on: every configured key acts on every instance",
        "Turn it off once the key rotation is done.",
    )


def secret_check(look):
    problem = secret_key_problem_text(look.settings.secret_key)
    return Health(
        "secret",
        "SECRET_KEY",
        "bad" if problem else "ok",
        "" if problem else "sound",
        problem.msgid if problem else "",
        problem.params if problem else {},
    )


def names_check(look):
    """Names in instance/config.py or ISVAPP_* variables that no setting declares (isvapp.settings
    reports them when the app is made): a misspelt setting is otherwise ignored without a word."""
    unknown = look.app.extensions.get("isvapp_unknown_settings") or []
    if not unknown:
        return None
    return Health(
        "names",
        "Setting names",
        "warn",
        "not settings isvapp knows, so ignored: %(names)s",
        "Correct the spelling (the nearest known names: %(nearest)s) in instance/config.py or the environment, "
        "then restart isvapp and its worker.",
        {
            "names": ", ".join(name for name, _ in unknown),
            "nearest": ", ".join(close for _, close in unknown if close) or "-",
        },
    )


def clock_check(look):
    """Fine below GO_LIVE_CLOCK_SKEW_S; bad from half the signature window, where requests start to
    be refused."""
    skews = [
        abs(s)  # type: ignore[arg-type]  # IS NOT NULL
        for (s,) in db.session.execute(
            select(Callback.clock_skew_ms)
            .where(Callback.clock_skew_ms.is_not(None))
            .order_by(Callback.id.desc())
            .limit(100)
        ).all()
    ]
    if not skews:
        return Health("clock", "Clock skew", "warn", "no signed request seen yet")
    worst = max(skews) / 1000
    settings = look.settings
    ok_below, bad_from = settings.pages.clock_skew_ok_s, settings.signature_window_s / 2
    state = "ok" if worst < ok_below else "warn" if worst < bad_from else "bad"
    return Health(
        "clock",
        "Clock skew",
        state,
        "%(worst)s s at most in the last %(count)s signed requests",
        "" if state == "ok" else "Turn on time synchronisation (NTP, e.g. chrony).",
        {"worst": f"{worst:.1f}", "count": len(skews)},
    )


def https_check(look):
    recent = [
        h
        for (h,) in db.session.execute(
            select(Callback.https).where(Callback.key_fingerprint.is_not(None)).order_by(Callback.id.desc()).limit(50)
        ).all()
    ]
    if not recent:
        return Health("https", "HTTPS", "warn", "no signed request seen yet")
    plain = sum(1 for h in recent if not h)
    return Health(
        "https",
        "HTTPS",
        "ok" if not plain else "warn",
        "%(secure)s of the last %(count)s signed requests over https",
        ""
        if not plain
        else "Serve https through nginx and set PROXY_FIX_HOPS = 1 so isvapp sees X-Forwarded-Proto (docs/deploy.md).",
        {"secure": len(recent) - plain, "count": len(recent)},
    )


def proxy_check(look):
    """A request from another host with no proxy in front means gunicorn's port is open to the
    network: its synchronous workers are then held by any slow client (docs/deploy.md). Without
    PROXY_FIX_HOPS the callback log's addresses are the connections' own, so a non-loopback one
    among the recent callbacks says it as well as this page's own request does."""
    seen = [look.page_client] if look.page_client else []
    if not look.settings.ops.proxy_fix_hops:
        seen += [
            a
            for (a,) in db.session.execute(select(Callback.remote_addr).order_by(Callback.id.desc()).limit(50)).all()
            if a
        ]
    direct = sorted({a for a in seen if not outbound.is_loopback(a)})
    if direct:
        return Health(
            "proxy",
            "Proxy in front",
            "warn",
            "requests arrive straight from the network",
            "Put nginx with request buffering in front and bind gunicorn to 127.0.0.1: two slow "
            "clients can hold both workers (docs/deploy.md).",
        )
    return Health("proxy", "Proxy in front", "ok", "every request came through this host")


def login_check(look):
    """The buyer's login, once a joint-operation app can use it (an app synced with a clientId):
    its issuer and redirect URI pinned, not taken from a request's Host header, and the
    development setting that lets an IdP be on this host off."""
    login = look.settings.login
    in_use = db.session.execute(select(KitApp.id).where(KitApp.client_id.is_not(None)).limit(1)).first()
    if in_use is None and not login.allow_loopback_idp:
        return None
    if login.allow_loopback_idp:
        return Health(
            "login",
            "Buyer's login",
            "bad",
            "LOGIN_ALLOW_LOOPBACK_IDP is on: a tenant's IdP may be on this host, over plain http",
            "A development setting, for the fake IdP: turn it off on a server the marketplace calls.",
        )
    unset = [
        name
        for name, value in (("LOGIN_ISSUER", login.issuer), ("LOGIN_REDIRECT_URI", login.redirect_uri))
        if not value
    ]
    if unset:
        return Health(
            "login",
            "Buyer's login",
            "warn",
            "%(names)s not set: taken from each request's Host header",
            "Set LOGIN_ISSUER to this server's public base URL (https://your.domain) and LOGIN_REDIRECT_URI to "
            "the redirect URI registered with the app's credentials; until then a login from another host is refused.",
            {"names": ", ".join(unset)},
        )
    return Health("login", "Buyer's login", "ok", "issuer and redirect URI set")


def worker_check(look):
    """Bad past ALERT_WORKER_SILENT_S: the worker_silent alert's and /readyz's threshold."""
    beat = look.age_s("worker_heartbeat")
    fine = beat is not None and beat <= look.settings.alerts.worker_silent_s
    return Health(
        "worker",
        "Background worker",
        "ok" if fine else "bad",
        "never seen" if beat is None else "last heartbeat %(age)s s ago",
        "" if fine else "Start `.venv/bin/isvapp worker` (scripts/run.sh and the systemd unit do).",
        {"age": f"{beat:.0f}" if beat is not None else ""},
    )


def usage_push_check(look):
    pushed_at, on_time, late = usage.last_push()
    if late:
        return Health(
            "usage_push",
            "Usage push",
            "bad",
            "%(late)s record(s) missed their hour's deadline in the last 24 h",
            "Keep the worker running and reaching the marketplace: the rules want "
            "each hour's usage within 15 minutes of the next hour.",
            {"late": late},
        )
    return Health(
        "usage_push",
        "Usage push",
        "ok",
        "no usage pushed yet"
        if pushed_at is None
        else "last push %(pushed_at)s, on time"
        if on_time
        else "last push %(pushed_at)s, late",
        "",
        {"pushed_at": pushed_at},
    )


def order_query_check(look):
    value, when = look.reported.get("order_query", (None, None))
    if value is None:
        return Health(
            "order_query",
            "Order-query API",
            "warn",
            "not called yet",
            "Set KOO_API_BASE_URL, KOO_AK and KOO_SK; G2 orders' details come from it.",
        )
    good = bool(value.get("ok"))
    return Health(
        "order_query",
        "Order-query API",
        "ok" if good else "bad",
        "answered (%(called_at)s)" if good else "failed: %(error)s (%(called_at)s)",
        ""
        if good
        else "Set KOO_AK and KOO_SK (your seller AK/SK) in instance/config.py and restart isvapp and its "
        "worker: the orders' details are fetched at their next retry, and the Jobs page retries "
        "the ones that died."
        if _unconfigured(value)
        else "Check KOO_AK/KOO_SK and that this server reaches the marketplace API; the Jobs page "
        "retries the orders that died.",
        {"called_at": when, "error": str(value.get("error", ""))},
    )


def dead_jobs_check(look):
    """Jobs out of attempts: each waits for the merchant, on the jobs page (retry or give up)."""
    dead = db.session.execute(select(func.count()).select_from(Job).where(Job.state == JobState.DEAD)).scalar_one()
    if not dead:
        return Health("jobs", "Dead jobs", "ok", "none")
    return Health(
        "jobs",
        "Dead jobs",
        "bad",
        "%(dead)s job(s) out of attempts",
        "Open each on the Jobs page: read its error, mend the cause, then retry it, or give it up with a reason.",
        {"dead": dead},
    )


def backup_check(look):
    """A warning once the last backup is older than GO_LIVE_BACKUP_MAX_AGE_H."""
    backup_age = look.age_s("backup")
    fine = backup_age is not None and backup_age < look.settings.pages.backup_max_age_h * 3600
    return Health(
        "backup",
        "Last backup",
        "ok" if fine else "warn",
        "never" if backup_age is None else "%(hours)s h ago",
        "" if fine else "Run `.venv/bin/isvapp backup PATH` daily (docs/deploy.md).",
        {"hours": f"{backup_age / 3600:.0f}" if backup_age is not None else ""},
    )


def selfcheck_check(look):
    """The last `isvapp selfcheck` of the public deployment (what the Seller Console's security
    scan would flag), as it recorded itself (background.status.last_selfcheck)."""
    last = status.last_selfcheck()
    if last is None:
        return Health(
            "selfcheck",
            "Security self-check",
            "warn",
            "never run",
            "Run `.venv/bin/isvapp selfcheck https://your.domain` before the Seller Console's security scan "
            "(docs/deploy.md).",
        )
    bad, warn = last["counts"].get("bad", 0), last["counts"].get("warn", 0)
    ids = ", ".join(f["id"] for f in last["findings"][:6])
    if bad:
        return Health(
            "selfcheck",
            "Security self-check",
            "bad",
            "%(url)s at %(checked_at)s: %(bad)s finding(s) the scan would flag, %(warn)s warning(s): %(ids)s",
            "Fix them as `.venv/bin/isvapp selfcheck` says, then run it again.",
            {"url": last["url"], "checked_at": last["at"], "bad": bad, "warn": warn, "ids": ids},
        )
    return Health(
        "selfcheck",
        "Security self-check",
        "warn" if warn else "ok",
        "%(url)s at %(checked_at)s: nothing the scan would flag, %(warn)s warning(s) %(ids)s",
        "",
        {"url": last["url"], "checked_at": last["at"], "warn": warn, "ids": ids},
    )


def alerts_check(look):
    configured = channels.configured_channels(look.settings)
    return Health(
        "alerts",
        "Alert channels",
        "ok" if configured else "warn",
        "%(channels)s" if configured else "none: alerts are recorded and shown only on the Alerts page",
        ""
        if configured
        else "Set ALERT_EMAIL_TO (with ALERT_SMTP_*) or a group robot URL "
        "(ALERT_WECOM_URL, ALERT_DINGTALK_URL, ALERT_FEISHU_URL).",
        {"channels": [Text(channels.CHANNEL_NAMES[c]) for c in configured]},
    )


def disk_check(look):
    """Bad below ALERT_DISK_FREE_PCT free: the disk_low alert's threshold."""
    disk = shutil.disk_usage(look.app.instance_path)
    free_pct = 100 * disk.free / disk.total
    fine = free_pct >= look.settings.alerts.disk_free_pct
    return Health(
        "disk",
        "Free disk and database size",
        "ok" if fine else "bad",
        "%(free)s GiB free (%(percent)s%%), database %(database)s MiB",
        "" if fine else "Free disk space: a full disk answers 000005 to the marketplace.",
        {"free": f"{disk.free / 2**30:.1f}", "percent": f"{free_pct:.0f}", "database": f"{_database_mib():.1f}"},
    )


# The rows of the go-live page's health, in their order: each a function of a Look that gives one
# Health row, or None when it has nothing to say. A new check is a function here and a line below.
CHECKS = [
    keys_check,
    unowned_check,
    shared_check,
    secret_check,
    names_check,
    clock_check,
    https_check,
    proxy_check,
    login_check,
    worker_check,
    usage_push_check,
    order_query_check,
    dead_jobs_check,
    backup_check,
    selfcheck_check,
    alerts_check,
    disk_check,
]


# What the order-query row asks the merchant to do; a real order's job retries (JOB_MAX_ATTEMPTS,
# backing off to JOB_RETRY_MAX_S) and then dies with a dead_job alert.


def _unconfigured(value):
    """The last order query never left this server: no AK/SK (openapi.MarketError code "config")."""
    return str(value.get("error", "")).startswith("config:")


def _unowned():
    """Instances and Kit tenants from before rows belonged to the key that created them (NULL):
    every key may act on them (docs/protocol.md, "Key ownership")."""
    return tuple(
        db.session.execute(select(func.count()).select_from(model).where(model.key_fingerprint.is_(None))).scalar_one()
        for model in (Instance, Tenant)
    )


def _database_mib():
    if db.engine.dialect.name == "sqlite":
        path = db.engine.url.database
        files = (path, path + "-wal") if path else ()  # an in-memory database has none
        return sum(os.path.getsize(p) for p in files if os.path.exists(p)) / 2**20
    return db.session.execute(text("SELECT pg_database_size(current_database())")).scalar_one() / 2**20


def recent_failures(days=7):
    """Failed callbacks of the last days, newest first (the go-live page links them)."""
    since = utcnow() - timedelta(days=days)
    return (
        db.session.execute(
            select(Callback)
            .where(Callback.received_at >= since, Callback.result_code != "000000")
            .order_by(Callback.received_at.desc())
            .limit(10)
        )
        .scalars()
        .all()
    )
