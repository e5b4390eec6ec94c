"""The pages: thin views over filtered, paginated queries (every list has an index to use).

Lists never count the whole table: a page fetches one row more than it shows to know whether a
next page exists. CSV exports run the same filtered query and stream rows as they are read.

Test data (testFlag=1: the Seller Console's debugging, the merchant's simulator) is left out of the
instance and license lists by default; a list that leaves rows out says how many, with a link that
lists them. Every count on the overview links to the list of exactly those rows.
"""

import csv
import io
import json
from datetime import datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from sqlalchemy import and_, func, literal, or_, select
from werkzeug.datastructures import MultiDict

from ..background import alerts, channels, jobs, notices, registry, uploads, usage
from ..domain import apitokens, logins
from ..extensions import db
from ..koo import codes
from ..koo.signing import key_fingerprint
from ..market import openapi
from ..settings import settings_of
from ..storage import vault
from ..storage.models import (
    Alert,
    Callback,
    Conflict,
    Department,
    Event,
    Instance,
    InstanceState,
    Job,
    JobState,
    KitApp,
    KitUser,
    License,
    LicenseCode,
    LicenseInstallation,
    LicenseState,
    Tenant,
    utcnow,
)
from ..texts import N_, Text
from . import bp, charts, diagnosis, display, golive, i18n, security
from .labels import FIELD_LABELS, FIELD_VALUES, JOB_LABELS, USAGE_STATE_LABELS

PAGE = 50
TREE_LIMIT = 5000


@bp.before_request
def _before():
    i18n.choose()
    security.warn_about_an_untrusted_proxy()


@bp.after_request
def _after(response):
    return i18n.remember(security.secure_headers(response))


TIME_FIELDS = {"expire_time", "created_at", "released_at"}


def field_value(row, name):
    """A field as a person reads it: times in the merchant's zone, yes/no, states translated."""
    value = getattr(row, name)
    if name == "expire_time":
        return display.expiry(value)
    if name in TIME_FIELDS:
        return local_time(value)
    if isinstance(value, bool):
        return i18n.gettext("Yes") if value else i18n.gettext("No")
    if name == "details_state" and value:
        return i18n.gettext(f"details {value}")
    if name in FIELD_VALUES:
        return display.label(FIELD_VALUES[name], value)
    return "" if value is None else value


@bp.app_context_processor
def _template_helpers():
    return {
        "_": i18n.gettext,
        "csrf_token": security.csrf_token,
        "admin": security.current_admin,
        "lang": lambda: i18n.g.get("lang", "en"),
        "field_label": lambda name: FIELD_LABELS.get(name, name),
        "field_value": field_value,
        **display.HELPERS,
    }


local_time = display.local_time
bp.add_app_template_filter(display.local_time, "local")
bp.add_app_template_filter(display.expiry, "expiry")


def _zone():
    return ZoneInfo(settings_of(current_app).pages.timezone)


MAX_PAGE = 100_000
MAX_DAYS = 3650


def _bounded_int(name, default, low, high):
    """A whole number from the query, or a clear 400 naming the parameter and its range."""
    text = request.args.get(name)
    if text in (None, ""):
        return default
    try:
        value = int(text) if len(text) <= 12 else None
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        abort(400, f"{name} must be a whole number from {low} to {high}")
    return value


def _page():
    return _bounded_int("page", 1, 1, MAX_PAGE)


def paged(statement):
    """(rows, page, has_next) for the current ?page=."""
    page = _page()
    rows = db.session.execute(statement.limit(PAGE + 1).offset((page - 1) * PAGE)).scalars().all()
    return rows[:PAGE], page, len(rows) > PAGE


# The parameters the lists read (instance_query, license_query, callback_query, paged, the
# language). Links that carry the current filters pass only these: url_for takes others as its
# own (_method gave a 500, _scheme and _external rewrote the Export CSV link to another host).
FILTER_PARAMS = (
    "q",
    "state",
    "data",
    "product",
    "expiring",
    "sort",
    "activity",
    "code",
    "warned",
    "from",
    "to",
    "hours",
    "kind",
    "lang",
)


def filter_args():
    """The current request's known filter parameters, for links that keep them."""
    return {name: request.args[name] for name in FILTER_PARAMS if name in request.args}


def page_url(page):
    return url_for(
        request.endpoint,  # type: ignore[arg-type]
        **(request.view_args or {}),
        **filter_args(),
        page=page,
    )


def lang_url(code):
    """This page in another language: its query string kept (filters, page), only ``lang`` replaced."""
    args = [(name, value) for name, value in request.args.items(multi=True) if name != "lang"]
    path = url_for(request.endpoint, **(request.view_args or {})) if request.endpoint else request.path
    return path + "?" + urlencode([*args, ("lang", code)])


bp.add_app_template_global(page_url)
bp.add_app_template_global(filter_args)
bp.add_app_template_global(lang_url)


# --- login -------------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login():
    failed = False
    if request.method == "POST":
        security.check_csrf()
        found = security.authenticate(request.form.get("name"), request.form.get("password"))
        if found:
            security.log_in(*found)
            target = request.args.get("next", "")
            return redirect(target if target.startswith("/admin") and "//" not in target else url_for(".overview"))
        failed = True
    return render_template("dashboard/login.html", failed=failed), 200 if not failed else 401


@bp.post("/logout")
@security.login_required
def logout():
    security.log_out()
    return redirect(url_for(".login"))


# --- overview ----------------------------------------------------------------------------------


@bp.get("/")
@security.login_required
def overview():
    now = utcnow()
    local_midnight = datetime.now(_zone()).replace(hour=0, minute=0, second=0, microsecond=0)
    today = local_midnight.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
    count = lambda model, *where: db.session.execute(  # noqa: E731
        select(func.count()).select_from(model).where(*where)
    ).scalar_one()
    # Real and test data apart, each count with the link that lists exactly its rows. Each is a
    # count over an index (the states', the expiry's) less the test rows among it, found through the
    # test-data index: grouping by the flag read every row of the table (bench.dashboard: 72 -> 321
    # ms at 100,000 instances). The test rows are grouped by an expression of the state, not the
    # column, or SQLite walks the states' index (every row) to save itself the grouping's sort.
    state_of = func.coalesce(Instance.state, "")
    tests = dict(
        db.session.execute(select(state_of, func.count()).where(Instance.test_flag.is_(True)).group_by(state_of)).all()
    )
    states = {}
    for state, n in db.session.execute(select(Instance.state, func.count()).group_by(Instance.state)).all():
        states[(state, False)], states[(state, True)] = n - tests.get(state, 0), tests.get(state, 0)
    soon = (
        Instance.state == InstanceState.ACTIVE,
        Instance.expire_time >= now,
        Instance.expire_time < now + timedelta(days=EXPIRING_DAYS),
    )
    expiring_tests = count(Instance, *soon, Instance.test_flag.is_(True))
    expiring = {"test": expiring_tests, "real": count(Instance, *soon) - expiring_tests}
    usage_pushed, usage_late = usage.last_day(now)
    figures = {
        "callbacks_today": count(Callback, Callback.received_at >= today),
        "failures_24h": count(
            Callback, Callback.received_at >= now - timedelta(hours=24), Callback.result_code != "000000"
        ),
        "expiring": expiring,
        "expiring_days": EXPIRING_DAYS,
        "warnings_24h": count(
            Callback, Callback.received_at >= now - timedelta(hours=24), Callback.warnings.is_not(None)
        ),
        "dead_jobs": count(Job, Job.state == JobState.DEAD),
        "conflicts": count(Conflict),
        "usage_pushed_24h": usage_pushed,
        "usage_late_24h": usage_late,
        "today": datetime.now(_zone()).strftime("%Y-%m-%d"),
    }
    return render_template("dashboard/overview.html", states=states, all_states=InstanceState.ALL, **figures)


EXPIRING_DAYS = 7  # the overview's "expiring soon"


@bp.get("/charts/<name>.svg")
@security.login_required
def chart(name):
    draw = charts.CHARTS.get(name) or abort(404)
    response = Response(draw(settings_of(current_app).pages.timezone, i18n.gettext), mimetype="image/svg+xml")
    response.headers["Content-Security-Policy"] = charts.CSP
    return response


# --- going live ----------------------------------------------------------------------------------


@bp.get("/go-live")
@security.login_required
def go_live():
    root = request.host_url
    urls = {"produce": root + "produce", "license": root + "license", "https": request.is_secure}
    return render_template(
        "dashboard/go_live.html",
        checklists=golive.checklists(settings_of(current_app)),
        health=golive.health(
            current_app._get_current_object(),  # type: ignore[attr-defined]  # a proxy
            settings_of(current_app),
            page_client=_connection_address(),
        ),
        urls=urls,
    )


def _connection_address():
    """The address of the connection itself, before ProxyFix replaced it with the forwarded one."""
    original = request.environ.get("werkzeug.proxy_fix.orig") or {}
    return original.get("REMOTE_ADDR") or request.environ.get("REMOTE_ADDR")


# --- instances ---------------------------------------------------------------------------------


def instance_query(data=None):
    """The instances the filters ask for; ``data`` ("real", "test", "all") overrides the Data filter."""
    args = request.args
    statement = select(Instance)
    if args.get("state") in InstanceState.ALL:
        statement = statement.where(Instance.state == args["state"])
    if args.get("product"):
        statement = statement.where(Instance.product_id == args["product"])
    data = data or args.get("data", "real")
    if data != "all":
        statement = statement.where(Instance.test_flag.is_(data == "test"))
    days = _bounded_int("expiring", None, 0, MAX_DAYS)
    if days is not None:
        now = utcnow()
        statement = statement.where(Instance.expire_time >= now, Instance.expire_time < now + timedelta(days=days))
    q = (args.get("q") or "").strip()
    if q:
        statement = statement.where(
            or_(
                Instance.instance_id == q,
                Instance.order_id == q,
                Instance.customer_id == q,
                and_(Instance.customer_name >= q, Instance.customer_name < q + "\uffff"),
            )
        )
    if args.get("sort") == "expire":
        return statement.order_by(Instance.expire_time.is_(None), Instance.expire_time, Instance.id)
    return statement.order_by(Instance.id.desc())


@bp.get("/instances")
@security.login_required
def instances():
    return list_hiding_tests("dashboard/instances.html", instance_query, InstanceState.ALL)


def list_hiding_tests(template, query, states):
    """A list whose Data filter leaves test rows out by default (instances, licenses): a page of
    ``query()``'s rows, and what it hid (hidden_tests)."""
    rows, page, has_next = paged(query())
    return render_template(template, rows=rows, page=page, has_next=has_next, states=states, hidden=hidden_tests(query))


HIDDEN_COUNT_LIMIT = 1000  # test rows counted at most: a list's page never counts a whole table


def hidden_tests(query):
    """When the Data filter leaves test rows out (the default, "real"): (how many the same filters
    find among the test data, as text, "1000+" past the limit; the link that lists them); else None."""
    if request.args.get("data", "real") != "real":
        return None
    found = query("test").with_only_columns(literal(1)).order_by(None).limit(HIDDEN_COUNT_LIMIT + 1).subquery()
    count = db.session.execute(select(func.count()).select_from(found)).scalar_one()
    if not count:
        return None
    text = f"{HIDDEN_COUNT_LIMIT}+" if count > HIDDEN_COUNT_LIMIT else str(count)
    return text, url_for(request.endpoint, **{**filter_args(), "data": "test"})  # type: ignore[arg-type]


def _instance(instance_id):
    instance = db.session.execute(select(Instance).where(Instance.instance_id == instance_id)).scalar_one_or_none()
    if instance is None:
        abort(404)
    return instance


def timeline(instance):
    callbacks = (
        db.session.execute(
            select(Callback)
            .where(or_(Callback.instance_id == instance.instance_id, Callback.order_id == instance.order_id))
            .order_by(Callback.received_at.desc())
            .limit(200)
        )
        .scalars()
        .all()
    )
    events = (
        db.session.execute(
            select(Event).where(Event.instance_id == instance.instance_id).order_by(Event.created_at.desc()).limit(200)
        )
        .scalars()
        .all()
    )
    # An instance's jobs are its events' (keyed by the event id) and its licenses' uploads (keyed by
    # the license id), found through those tables' indexes: the jobs table keeps no index on
    # instance_id, which would cost every order one more page on a random key (bench/NOTES.md).
    keys = or_(
        Job.key.in_(select(Event.event_id).where(Event.instance_id == instance.instance_id)),
        and_(
            Job.kind == uploads.KIND,
            Job.key.in_(select(License.license_id).where(License.instance_id == instance.instance_id)),
        ),
    )
    job_rows = db.session.execute(select(Job).where(keys).order_by(Job.created_at.desc()).limit(200)).scalars().all()
    items = (
        [(c.received_at, "callback", c) for c in callbacks]
        + [(e.created_at, "event", e) for e in events]
        + [(j.created_at, "job", j) for j in job_rows]
    )
    return sorted(items, key=lambda item: item[0], reverse=True)


@bp.route("/instances/<instance_id>", methods=["GET", "POST"])
@security.login_required
def instance(instance_id):
    """POST (a form with its CSRF token) is the explicit click that reveals the password."""
    row = _instance(instance_id)
    password = None
    if request.method == "POST" and row.admin_password_sealed:
        password = vault.unseal(settings_of(current_app).secret_key, row.admin_password_sealed)
    licenses = (
        db.session.execute(
            select(License).where(License.instance_id == row.instance_id).order_by(License.issued_at.desc())
        )
        .scalars()
        .all()
    )
    now = utcnow()
    return render_template(
        "dashboard/instance.html",
        row=row,
        password=password,
        items=timeline(row),
        licenses=licenses,
        usage_records=[(r, usage.timing(r, now)) for r in usage.records_of(row.instance_id)],
        usage_states=USAGE_STATE_LABELS,
    )


# --- licenses ----------------------------------------------------------------------------------


def license_query(data=None):
    """The licenses the filters ask for; ``data`` overrides the Data filter (see instance_query)."""
    args = request.args
    statement = select(License)
    if args.get("state") in LicenseState.ALL:
        statement = statement.where(License.state == args["state"])
    data = data or args.get("data", "real")
    if data != "all":
        statement = statement.where(License.test_flag.is_(data == "test"))
    q = (args.get("q") or "").strip()
    if q:
        statement = statement.where(or_(License.instance_id == q, License.order_id == q, License.license_id == q))
    return statement.order_by(License.issued_at.desc(), License.id.desc())


@bp.get("/licenses")
@security.login_required
def licenses():
    return list_hiding_tests("dashboard/licenses.html", license_query, LicenseState.ALL)


@bp.get("/license-codes")
@security.login_required
def license_codes():
    """What the relay saw of each license code: activation, the last verification, usage reported."""
    q = (request.args.get("q") or "").strip()
    statement = select(LicenseCode).where(*([LicenseCode.code == q] if q else []))
    rows, page, has_next = paged(statement.order_by(LicenseCode.created_at.desc(), LicenseCode.id.desc()))
    installations = dict(
        db.session.execute(
            select(LicenseInstallation.code, func.count())
            .where(LicenseInstallation.code.in_([r.code for r in rows]))
            .group_by(LicenseInstallation.code)
        ).all()
    )
    return render_template(
        "dashboard/license_codes.html", rows=rows, page=page, has_next=has_next, installations=installations
    )


@bp.get("/licenses/<license_id>")
@security.login_required
def license_detail(license_id):
    row = db.session.execute(select(License).where(License.license_id == license_id)).scalar_one_or_none()
    if row is None:
        abort(404)
    return render_template("dashboard/license.html", row=row)


# --- tenants -----------------------------------------------------------------------------------


@bp.get("/tenants")
@security.login_required
def tenants():
    statement = select(Tenant).order_by(Tenant.updated_at.desc(), Tenant.id.desc())
    q = (request.args.get("q") or "").strip()
    if q:
        statement = statement.where(or_(Tenant.tenant_id == q, Tenant.instance_key == q, Tenant.tenant_code == q))
    rows, page, has_next = paged(statement)
    return render_template("dashboard/tenants.html", rows=rows, page=page, has_next=has_next)


def department_tree(rows):
    """Nested (department, children) from the flat list; departments whose parent is absent are roots."""
    children, codes = {}, {d.org_code for d in rows}
    for d in rows:
        children.setdefault(d.parent_code if d.parent_code in codes else None, []).append(d)

    def build(parent, depth=0):
        return [(d, build(d.org_code, depth + 1) if depth < 50 else []) for d in children.get(parent, [])]

    return build(None)


@bp.get("/tenants/<int:tenant_pk>")
@security.login_required
def tenant(tenant_pk):
    row = db.session.get(Tenant, tenant_pk) or abort(404)
    scope = (KitApp.instance_key == row.instance_key, KitApp.tenant_id == row.tenant_id)
    apps = db.session.execute(select(KitApp).where(*scope)).scalars().all()
    users = (
        db.session.execute(
            select(KitUser)
            .where(KitUser.instance_key == row.instance_key, KitUser.tenant_id == row.tenant_id)
            .order_by(KitUser.user_name)
            .limit(500)
        )
        .scalars()
        .all()
    )
    user_count = db.session.execute(
        select(func.count())
        .select_from(KitUser)
        .where(KitUser.instance_key == row.instance_key, KitUser.tenant_id == row.tenant_id)
    ).scalar_one()
    departments = (
        db.session.execute(
            select(Department)
            .where(Department.instance_key == row.instance_key, Department.tenant_id == row.tenant_id)
            .order_by(Department.org_code)
            .limit(TREE_LIMIT + 1)
        )
        .scalars()
        .all()
    )
    return render_template(
        "dashboard/tenant.html",
        row=row,
        apps=apps,
        users=users,
        user_count=user_count,
        tree=department_tree(departments[:TREE_LIMIT]),
        truncated=len(departments) > TREE_LIMIT,
        tree_limit=TREE_LIMIT,
        redirect_uri=settings_of(current_app).login.redirect_uri or url_for("login.callback", _external=True),
        handoff_default=settings_of(current_app).login.handoff_url,
        bad_handoff=request.args.get("bad") == "handoff",
    )


@bp.post("/tenants/<int:tenant_pk>/apps/<int:app_pk>/handoff")
@security.login_required
def app_handoff(tenant_pk, app_pk):
    """Set where an app's signed-in buyers are handed over (docs/handoff.md)."""
    problem = logins.set_handoff_url(app_pk, request.form.get("handoff_url"))
    if problem:
        return redirect(url_for(".tenant", tenant_pk=tenant_pk, bad="handoff"))
    saved = db.session.get(KitApp, app_pk)
    if saved is not None:
        fallback = settings_of(current_app).login.handoff_url
        if saved.handoff_url:
            said = Text(
                N_("Saved: %(app)s's signed-in buyers are handed over to %(url)s."),
                {"app": saved.app_id, "url": saved.handoff_url},
            )
        elif fallback:
            said = Text(
                N_("Saved: %(app)s's signed-in buyers are handed over to LOGIN_HANDOFF_URL, %(url)s."),
                {"app": saved.app_id, "url": fallback},
            )
        else:
            said = Text(
                N_("Saved: %(app)s has no hand-off URL, and LOGIN_HANDOFF_URL is not set either."),
                {"app": saved.app_id},
            )
        flash(display.say(said))
    return redirect(url_for(".tenant", tenant_pk=tenant_pk))


# --- the entitlement API's tokens --------------------------------------------------------------


@bp.route("/api-tokens", methods=["GET", "POST"])
@security.login_required
def api_tokens():
    """POST name, scope (one or both), product_id and/or key: a new token, shown on this answer
    only; POST revoke: that token stops working."""
    made = problem = None
    keys = [key_fingerprint(k) for k in settings_of(current_app).access_keys]
    if request.method == "POST":
        if request.form.get("revoke"):
            apitokens.revoke_token(int(request.form["revoke"]))
        else:
            try:
                made = apitokens.create_token(
                    request.form.get("name", ""),
                    request.form.getlist("scope"),
                    request.form.get("product_id"),
                    request.form.get("key"),
                    keys,
                )
            except apitokens.TokenProblem as error:
                problem = error.kind
    page = render_template(
        "dashboard/api_tokens.html",
        rows=apitokens.tokens(),
        made=made,
        problem=problem,
        keys=keys,
        form=request.form if problem else MultiDict(),
    )
    return page, 400 if problem else 200


# --- background jobs -----------------------------------------------------------------------------

DONE_COUNT_LIMIT = 10_000  # done jobs counted at most: one per order and more, they grow for ever
OPEN_STATES = tuple(s for s in JobState.ALL if s != JobState.DONE)


def job_query():
    """The jobs the filters ask for (state, kind, key), newest first."""
    statement, newest_first = select(Job), Job.id.desc()
    if request.args.get("state") in JobState.ALL:
        statement = statement.where(Job.state == request.args["state"])
        if request.args["state"] in OPEN_STATES:
            # Few rows, found through the states' index, then sorted. Ordered by the bare id,
            # SQLite walks every job newest first looking for them (it cannot know dead jobs are
            # rare): 76 ms against 13 at 300,000 jobs.
            newest_first = (Job.id + 0).desc()
    if request.args.get("kind"):
        statement = statement.where(Job.kind == request.args["kind"])
    q = (request.args.get("q") or "").strip()
    if q:
        statement = statement.where(Job.key == q)
    return statement.order_by(newest_first)


def job_counts():
    """({(state, kind): n} for every state but done; {state: its count as text}, done's "10000+"
    past DONE_COUNT_LIMIT). Why not done by kind: done jobs are most of the table and grow with
    every order, and kind has no index (one would cost every order's write); the other states
    are few, found through the states' index."""
    counts = {
        (state, kind): n
        for state, kind, n in db.session.execute(
            select(Job.state, Job.kind, func.count()).where(Job.state.in_(OPEN_STATES)).group_by(Job.state, Job.kind)
        ).all()
    }
    totals = {state: str(sum(n for (s, _), n in counts.items() if s == state)) for state in OPEN_STATES}
    found = select(literal(1)).where(Job.state == JobState.DONE).limit(DONE_COUNT_LIMIT + 1).subquery()
    done = db.session.execute(select(func.count()).select_from(found)).scalar_one()
    totals[JobState.DONE] = f"{DONE_COUNT_LIMIT}+" if done > DONE_COUNT_LIMIT else str(done)
    return counts, totals


@bp.route("/jobs", methods=["GET", "POST"], endpoint="jobs")
@security.login_required
def jobs_page():
    """POST action=retry_dead: every dead job queued again (`isvapp jobs retry --all-dead`)."""
    if request.method == "POST":
        if request.form.get("action") != "retry_dead":
            abort(400, "action must be retry_dead")
        db.session.rollback()
        queued = jobs.retry_dead()
        flash(display.say(Text(N_("%(count)s dead job(s) queued again."), {"count": len(queued)})))
        return redirect(url_for(".jobs", state=JobState.QUEUED))
    rows, page, has_next = paged(job_query())
    counts, totals = job_counts()
    instances = known_instances([r.instance_id for r in rows if r.instance_id])
    kinds = sorted(set(JOB_LABELS) | set(registry.current().handlers) | {kind for _, kind in counts})
    open_kinds = sorted({kind for _, kind in counts})
    return render_template(
        "dashboard/jobs.html",
        rows=rows,
        page=page,
        has_next=has_next,
        counts=counts,
        totals=totals,
        kinds=kinds,
        open_kinds=open_kinds,
        open_states=OPEN_STATES,
        instances=instances,
    )


def known_instances(instance_ids):
    """The ids among ``instance_ids`` that are instances here: a job names the instance its request
    named, which may not exist (a call about an instance this server never made)."""
    if not instance_ids:
        return set()
    found = select(Instance.instance_id).where(Instance.instance_id.in_(set(instance_ids)))
    return set(db.session.execute(found).scalars())


# A refused retry or give-up's answer: its status code, by jobs.Refused.problem.
REFUSED_STATUS = {"reason": 400, "missing": 404, "state": 409, "kind": 409}


@bp.route("/jobs/<int:job_id>", methods=["GET", "POST"])
@security.login_required
def job(job_id):
    """A job, in full. POST action=retry: a dead job queued again with a fresh set of attempts
    (`isvapp jobs retry ID`); action=give_up with a reason: a dead job given up for good, by the
    admin logged in. A refusal shows the page again, saying why, with nothing changed."""
    row = db.session.get(Job, job_id) or abort(404)
    problem = None
    if request.method == "POST":
        action = request.form.get("action")
        if action not in ("retry", "give_up"):
            abort(400, "action must be retry or give_up")
        db.session.rollback()
        try:
            if action == "retry":
                if not jobs.retry_dead([job_id]):
                    raise jobs.Refused("state")
                done = N_("Job %(job)s is queued again, with a fresh set of attempts.")
            else:
                jobs.give_up(job_id, request.form.get("reason"), security.current_admin())
                done = N_("Job %(job)s is given up: it will not run again.")
        except jobs.Refused as refused:
            problem = refused.problem
        else:
            flash(display.say(Text(done, {"job": job_id})))
            return redirect(url_for(".job", job_id=job_id))
        row = db.session.get(Job, job_id) or abort(404)
    said = openapi.said_in(row.last_error)
    if said is not None:  # extra_info as readable JSON, Chinese and all
        said = (said[0], None if said[1] is None else json.dumps(said[1], ensure_ascii=False, indent=2))
    page = render_template(
        "dashboard/job.html",
        row=row,
        said=said,
        problem=problem,
        form=request.form,
        instances=known_instances([row.instance_id] if row.instance_id else []),
    )
    return page, REFUSED_STATUS.get(problem or "", 200)


# --- alerts: the channels, a test message, the notices, the alerts raised --------------------------


@bp.route("/alerts", methods=["GET", "POST"], endpoint="alerts")
@security.login_required
def alerts_page():
    """POST test=<channel>: one test message through that channel now, and what it answered shown
    here. POST notices: the notices switched on and off (kept in the database for every host), or,
    with use_file, handed back to ALERT_NOTICES."""
    settings, tested, problem = settings_of(current_app), None, None
    if request.method == "POST" and "test" in request.form:
        tested, problem = _send_test(request.form["test"])
    elif request.method == "POST":
        chosen = request.form.getlist("notice")
        if any(k not in notices.KINDS for k in chosen):
            problem = "notice"
        else:
            db.session.rollback()
            use_file = bool(request.form.get("use_file"))
            notices.choose(settings, None if use_file else chosen, security.current_admin())
            flash(
                display.say(
                    Text(N_("Saved: the notices follow ALERT_NOTICES in the configuration file again."))
                    if use_file
                    else Text(N_("Saved: the notices chosen here are in force on every host."))
                )
            )
            return redirect(url_for(".alerts") + "#notices")
    rows, page, has_next = paged(select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc()))
    html = render_template(
        "dashboard/alerts.html",
        channels=channels.channel_states(settings),
        notices=notices.in_force(settings),
        notice_kinds=notices.KINDS,
        tested=tested,
        problem=problem,
        rows=rows,
        page=page,
        has_next=has_next,
    )
    return html, 400 if problem else 200


def _send_test(channel):
    """(what the test message to ``channel`` came to, or None; the problem with the request, or None)."""
    if channel not in channels.CHANNELS:
        return None, "channel"
    tested = {"channel": channel, "name": channels.CHANNEL_NAMES[channel]}
    if channel not in channels.configured_channels(settings_of(current_app)):
        return tested, "unconfigured"
    db.session.rollback()  # no transaction held while the channel answers (up to 10 s)
    try:
        answer = alerts.send_test(channel, settings_of(current_app), by=security.current_admin())
    except channels.ChannelError as error:
        return {**tested, "ok": False, "error": str(error)}, None
    return {**tested, "ok": True, "answer": answer}, None


# --- callbacks ---------------------------------------------------------------------------------


def _day(name):
    text = request.args.get(name) or ""
    try:
        local = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=_zone())
    except ValueError:
        return None
    return local.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


def callback_query():
    args = request.args
    statement = select(Callback)
    if args.get("activity"):
        statement = statement.where(Callback.activity == args["activity"])
    code = args.get("code")
    if code == "fail":
        statement = statement.where(Callback.result_code != codes.SUCCESS)
    elif code == codes.SUCCESS:
        statement = statement.where(Callback.result_code == code)
    elif code:  # the second term, implied by the first, lets the failures' (partial) index serve it
        statement = statement.where(Callback.result_code == code, Callback.result_code != codes.SUCCESS)
    if args.get("warned"):
        statement = statement.where(Callback.warnings.is_not(None))
    start, end = _day("from"), _day("to")
    if start:
        statement = statement.where(Callback.received_at >= start)
    if end:
        statement = statement.where(Callback.received_at < end + timedelta(days=1))
    hours = _bounded_int("hours", None, 1, 24 * MAX_DAYS)  # the overview's "in the last 24 h"
    if hours is not None:
        statement = statement.where(Callback.received_at >= utcnow() - timedelta(hours=hours))
    q = (args.get("q") or "").strip()
    if q:
        statement = statement.where(or_(Callback.order_id == q, Callback.instance_id == q))
    return statement.order_by(Callback.received_at.desc(), Callback.id.desc())


@bp.get("/callbacks")
@security.login_required
def callbacks():
    rows, page, has_next = paged(callback_query())
    return render_template("dashboard/callbacks.html", rows=rows, page=page, has_next=has_next)


@bp.get("/callbacks/<int:callback_id>")
@security.login_required
def callback(callback_id):
    row = db.session.get(Callback, callback_id) or abort(404)
    return render_template("dashboard/callback.html", row=row, cause=diagnosis.explain(row.result_code, row.result_msg))


# --- CSV ---------------------------------------------------------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A cell a spreadsheet shows as text: buyer-controlled text starting like a formula gets a leading
    apostrophe (OWASP's advice for CSV injection), so ``=HYPERLINK(...)`` is never live."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_response(filename, columns, statement):
    """Stream the filtered rows as CSV, reading them in batches (a large export stays small in memory)."""

    def generate():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for row in db.session.execute(statement.execution_options(yield_per=1000)).scalars():
            writer.writerow([csv_cell(getattr(row, c)) for c in columns])
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    response = Response(stream_with_context(generate()), content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


INSTANCE_COLUMNS = [
    "instance_id",
    "state",
    "generation",
    "product_type",
    "test_flag",
    "simulated",
    "order_id",
    "order_line_id",
    "product_id",
    "sku_code",
    "customer_id",
    "customer_name",
    "charging_mode",
    "period_type",
    "period_number",
    "expire_time",
    "details_state",
    "created_at",
    "released_at",
]
LICENSE_COLUMNS = [
    "license_id",
    "instance_id",
    "order_id",
    "state",
    "fingerprint",
    "event_id",
    "test_flag",
    "effective_time",
    "expire_time",
    "issued_at",
]
CALLBACK_COLUMNS = [
    "id",
    "received_at",
    "method",
    "path",
    "generation",
    "activity",
    "order_id",
    "instance_id",
    "tenant_id",
    "test_flag",
    "simulated",
    "result_code",
    "result_msg",
    "duration_ms",
    "remote_addr",
    "key_fingerprint",
    "warnings",
]


@bp.get("/instances.csv")
@security.login_required
def instances_csv():
    return csv_response("instances.csv", INSTANCE_COLUMNS, instance_query())


@bp.get("/licenses.csv")
@security.login_required
def licenses_csv():
    return csv_response("licenses.csv", LICENSE_COLUMNS, license_query())


@bp.get("/callbacks.csv")
@security.login_required
def callbacks_csv():
    return csv_response("callbacks.csv", CALLBACK_COLUMNS, callback_query())
