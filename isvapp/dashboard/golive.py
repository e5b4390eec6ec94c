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
from datetime import timedelta

from sqlalchemy import func, select, text

from .. import outbound
from ..background import alerts, status, usage
from ..config import secret_key_problem_text
from ..domain import simulation
from ..extensions import db
from ..koo.signing import key_fingerprint
from ..storage.models import (
    Alert,
    Callback,
    Instance,
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


def _age(moment, now):
    return None if moment is None else (now - moment).total_seconds()


def health(app, settings, now=None, page_client=None):
    """The configuration's health; ``page_client`` is the address this page's own request came
    from before any proxy header was applied (the view knows it; this module does not read the
    request)."""
    now = now or utcnow()
    items = []
    keys = [key_fingerprint(k) for k in settings.access_keys]
    kit_keys = [key_fingerprint(k) for k in settings.kit_access_keys if k not in settings.access_keys]
    items.append(
        Health(
            "keys",
            "Keys configured",
            "ok" if keys else "bad",
            "%(keys)s" if keys else "none",
            "" if keys else "Set KOO_ACCESS_KEY to the Key the Seller Console shows for this product.",
            {"keys": ", ".join(keys + [f"Kit {k}" for k in kit_keys])},
        )
    )
    instances, tenants = _unowned()
    items.append(
        Health(
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
    )
    if settings.share_instances_across_keys:
        items.append(
            Health(
                "shared",
                "Instances shared across keys",
                "warn",
                "KOO_SHARE_INSTANCES_ACROSS_KEYS is on: every configured key acts on every instance",
                "Turn it off once the key rotation is done.",
            )
        )
    problem = secret_key_problem_text(settings.secret_key)
    items.append(
        Health(
            "secret",
            "SECRET_KEY",
            "bad" if problem else "ok",
            "" if problem else "sound",
            problem.msgid if problem else "",
            problem.params if problem else {},
        )
    )
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
        items.append(Health("clock", "Clock skew", "warn", "no signed request seen yet"))
    else:
        worst = max(skews) / 1000
        state = "ok" if worst < 5 else "warn" if worst < settings.signature_window_s / 2 else "bad"
        items.append(
            Health(
                "clock",
                "Clock skew",
                state,
                "%(worst)s s at most in the last %(count)s signed requests",
                "" if state == "ok" else "Turn on time synchronisation (NTP, e.g. chrony).",
                {"worst": f"{worst:.1f}", "count": len(skews)},
            )
        )
    recent = [
        h
        for (h,) in db.session.execute(
            select(Callback.https).where(Callback.key_fingerprint.is_not(None)).order_by(Callback.id.desc()).limit(50)
        ).all()
    ]
    if not recent:
        items.append(Health("https", "HTTPS", "warn", "no signed request seen yet"))
    else:
        plain = sum(1 for h in recent if not h)
        items.append(
            Health(
                "https",
                "HTTPS",
                "ok" if not plain else "warn",
                "%(secure)s of the last %(count)s signed requests over https",
                ""
                if not plain
                else "Serve https through nginx and set PROXY_FIX_HOPS = 1 "
                "so isvapp sees X-Forwarded-Proto (docs/deploy.md).",
                {"secure": len(recent) - plain, "count": len(recent)},
            )
        )
    items.append(_proxy_health(settings, page_client))
    login = _login_health(settings)
    if login is not None:
        items.append(login)
    reported = status.read("worker_heartbeat", "order_query", "backup")
    beat = _age(reported.get("worker_heartbeat", (None, None))[1], now)
    silent_s = settings.alerts.worker_silent_s  # the worker_silent alert's and /readyz's threshold
    items.append(
        Health(
            "worker",
            "Background worker",
            "ok" if beat is not None and beat <= silent_s else "bad",
            "never seen" if beat is None else "last heartbeat %(age)s s ago",
            ""
            if beat is not None and beat <= silent_s
            else "Start `.venv/bin/isvapp worker` (scripts/run.sh and the systemd unit do).",
            {"age": f"{beat:.0f}" if beat is not None else ""},
        )
    )
    pushed_at, on_time, late = usage.last_push()
    if late:
        items.append(
            Health(
                "usage_push",
                "Usage push",
                "bad",
                "%(late)s record(s) missed their hour's deadline in the last 24 h",
                "Keep the worker running and reaching the marketplace: the rules want "
                "each hour's usage within 15 minutes of the next hour.",
                {"late": late},
            )
        )
    else:
        items.append(
            Health(
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
        )
    value, when = reported.get("order_query", (None, None))
    if value is None:
        items.append(
            Health(
                "order_query",
                "Order-query API",
                "warn",
                "not called yet",
                "Set KOO_API_BASE_URL, KOO_AK and KOO_SK; G2 orders' details come from it.",
            )
        )
    else:
        good = bool(value.get("ok"))
        items.append(
            Health(
                "order_query",
                "Order-query API",
                "ok" if good else "bad",
                "answered (%(called_at)s)" if good else "failed: %(error)s (%(called_at)s)",
                ""
                if good
                else "Set KOO_AK and KOO_SK (your seller AK/SK) in instance/config.py and restart isvapp and its "
                "worker: the orders' details are fetched at their next retry, and "
                "`.venv/bin/isvapp jobs retry --all-dead` sends again the ones that gave up."
                if _unconfigured(value)
                else "Check KOO_AK/KOO_SK and that this server reaches the marketplace API; "
                "`.venv/bin/isvapp jobs retry --all-dead` sends again the orders that gave up.",
                {"called_at": when, "error": str(value.get("error", ""))},
            )
        )
    backup_age = _age(reported.get("backup", (None, None))[1], now)
    items.append(
        Health(
            "backup",
            "Last backup",
            "ok" if backup_age is not None and backup_age < 2 * 86400 else "warn",
            "never" if backup_age is None else "%(hours)s h ago",
            ""
            if backup_age is not None and backup_age < 2 * 86400
            else "Run `.venv/bin/isvapp backup PATH` daily (docs/deploy.md).",
            {"hours": f"{backup_age / 3600:.0f}" if backup_age is not None else ""},
        )
    )
    items.append(_selfcheck_health())
    channels = alerts.configured_channels(settings)
    items.append(
        Health(
            "alerts",
            "Alert channels",
            "ok" if channels else "warn",
            "%(channels)s" if channels else "none: alerts are recorded and shown only on this page",
            ""
            if channels
            else "Set ALERT_EMAIL_TO (with ALERT_SMTP_*) or a group robot URL "
            "(ALERT_WECOM_URL, ALERT_DINGTALK_URL, ALERT_FEISHU_URL).",
            {"channels": [Text(alerts.CHANNEL_NAMES[c]) for c in channels]},
        )
    )
    disk = shutil.disk_usage(app.instance_path)
    free_pct = 100 * disk.free / disk.total
    items.append(
        Health(
            "disk",
            "Free disk and database size",
            "ok" if free_pct >= 10 else "bad",
            "%(free)s GiB free (%(percent)s%%), database %(database)s MiB",
            "" if free_pct >= 10 else "Free disk space: a full disk answers 000005 to the marketplace.",
            {"free": f"{disk.free / 2**30:.1f}", "percent": f"{free_pct:.0f}", "database": f"{_database_mib():.1f}"},
        )
    )
    return items


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


def _proxy_health(settings, page_client):
    """A request from another host with no proxy in front means gunicorn's port is open to the
    network: its synchronous workers are then held by any slow client (docs/deploy.md). Without
    PROXY_FIX_HOPS the callback log's addresses are the connections' own, so a non-loopback one
    among the recent callbacks says it as well as this page's own request does."""
    seen = [page_client] if page_client else []
    if not settings.ops.proxy_fix_hops:
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


def _selfcheck_health():
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


def _login_health(settings):
    """The buyer's login, once a joint-operation app can use it (an app synced with a clientId):
    its issuer and redirect URI pinned, not taken from a request's Host header, and the
    development setting that lets an IdP be on this host off."""
    login = settings.login
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


def recent_alerts(limit=20):
    """The newest alerts, sent or not: with no channel configured this is where the merchant sees them."""
    return (
        db.session.execute(select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc()).limit(limit))
        .scalars()
        .all()
    )
