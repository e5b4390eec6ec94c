"""The merchant's first afternoon, as a test: real processes on 127.0.0.1, default settings.

Only what a merchant must set is set: the Key, SECRET_KEY, the order-query API's base URL (the
fake marketplace here) and the seller AK/SK. Then, in the order a merchant goes:

1. gunicorn with 2 workers, and ``flask fake-market`` as the marketplace open API;
2. ``flask simulate`` with every suite, both generations, ``--probes`` and ``--tolerance``: all pass,
   the Kit suite's buyer login through its own IdP included;
3. only now ``flask worker``, left to settle (no job due, queued or running);
4. no job dead, none failed along the way (last_error);
5. logged in with Chromium (Playwright), every page of the navigation in English and in Chinese,
   every filter, detail pages from the lists, CSV exports and charts: all 200, no traceback;
6. no "Traceback" in any process's log.

Steps 1 to 6 run once per test command (marked any_database): in the SQLite run, except the walk
through every page in both languages (step 5), which runs in the PostgreSQL run when the two runs
are side by side (also marked once_beside: that run is the shorter one).
The PostgreSQL variant (skipped on SQLite) runs two gunicorn servers and two workers on one
database and restarts PostgreSQL in the middle of signed newInstance load (tests/pgctl.py): both
hosts and both workers carry on, nothing acknowledged is lost, no job is lost or doubled.
"""

import csv
import io
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
import requests
from isvapp.koo.signing import g1_signed_params, g2_signed_request
from isvapp.standins.simulator import SUITES
from isvapp.storage.models import (
    Alert,
    Callback,
    Event,
    Instance,
    Job,
    JobState,
    License,
    LicenseCode,
    Tenant,
    UsageRecord,
    utcnow,
)
from sqlalchemy import create_engine, func, make_url, select, text
from sqlalchemy.pool import NullPool

from . import pagetext
from .helpers import KEY, ON_POSTGRES, SERVER_URI
from .live import ROOT, LiveServer, free_port, stop_process
from .tiers import live_fixture

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AK, SK = "tour-ak", "tour-sk"
ADMIN, PASSWORD = "merchant", "first afternoon password"
SETTLE_S = 120  # the worker's settling, bounded (generous: a loaded 2-core machine)
SAMPLE = 20  # detail pages per list, besides one of every distinct kind


# --- processes -----------------------------------------------------------------------------------


class Proc:
    """A ``flask --app isvapp ...`` subprocess with its stdout and stderr in files."""

    def __init__(self, folder, name, args, env):
        self.name = name
        self.out_path, self.err_path = folder / f"{name}.out", folder / f"{name}.err"
        self.out, self.err = open(self.out_path, "w"), open(self.err_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "isvapp", *args],
            cwd=ROOT,
            env=env,
            stdout=self.out,
            stderr=self.err,
        )

    def alive(self):
        return self.proc.poll() is None

    def logs(self):
        return {f"{self.name} stdout": self.out_path, f"{self.name} stderr": self.err_path}

    def stop(self):
        stop_process(self.proc)
        self.out.close()
        self.err.close()


def wait_for_port(port, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited: {proc.err_path.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not listen on {port} in {timeout} s")


def own_schema_uri(name):
    """On PostgreSQL, a schema of our own (the conftest fixture's is per test; ours is per module)."""
    engine = create_engine(SERVER_URI, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    schema = f"{name}_{uuid.uuid4().hex[:12]}"
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    uri = make_url(SERVER_URI).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, uri.render_as_string(hide_password=False)


def drop_schema(schema):
    engine = create_engine(SERVER_URI, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("SET lock_timeout = '10s'"))
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def merchant_env(market_url, database_uri=None):
    """Only what a merchant must set (SECRET_KEY comes from LiveServer; the same value everywhere)."""
    env = {
        "ISVAPP_KOO_ACCESS_KEY": KEY,
        "ISVAPP_KOO_AK": AK,
        "ISVAPP_KOO_SK": SK,
        "ISVAPP_KOO_API_BASE_URL": market_url,
        # the simulator's Kit suite plays the tenant's IdP on this host (README, the buyer's login)
        "ISVAPP_LOGIN_ALLOW_LOOPBACK_IDP": "true",
    }
    if database_uri:
        env["ISVAPP_SQLALCHEMY_DATABASE_URI"] = database_uri
    return env


def due_jobs(engine):
    """Jobs a worker still has to do now: queued and due, or running."""
    now = utcnow()
    with engine.connect() as conn:
        return conn.execute(
            select(Job.id, Job.kind, Job.state).where(
                ((Job.state == JobState.QUEUED) & (Job.run_after <= now)) | (Job.state == JobState.RUNNING)
            )
        ).all()


def settle(engine, workers, timeout=SETTLE_S):
    """Wait until no job is due twice in a row (bounded); returns the seconds it took."""
    started = time.monotonic()
    deadline, idle = started + timeout, 0
    while time.monotonic() < deadline:
        dead = [w.name for w in workers if not w.alive()]
        assert not dead, f"worker(s) exited: {dead}: " + " ".join(w.err_path.read_text()[-2000:] for w in workers)
        idle = idle + 1 if not due_jobs(engine) else 0
        if idle >= 2:
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"jobs still due after {timeout} s: {Counter((k, s) for _, k, s in due_jobs(engine))}")


def describe_jobs(rows):
    return "\n".join(
        f"job {j.id} {j.kind} key={j.key} state={j.state} attempts={j.attempts}/{j.max_attempts} "
        f"instance={j.instance_id}\n    " + (j.last_error or "").strip().replace("\n", "\n    ")
        for j in rows
    )


def tracebacks(paths):
    """{log name: the lines around each 'Traceback'} for every log that has one."""
    found = {}
    for name, path in paths.items():
        content = path.read_text(errors="replace") if path.exists() else ""
        if "Traceback" in content:
            lines = content.splitlines()
            at = [i for i, line in enumerate(lines) if "Traceback" in line]
            found[name] = (
                "\n".join("\n".join(lines[max(i - 2, 0) : i + 25]) for i in at[:5])
                + f"\n... ({len(at)} tracebacks in {path})"
            )
    return found


def exceptions(path):
    """Counter of the exception lines ending the tracebacks in a log ("psycopg.OperationalError: ...")."""
    found, lines = Counter(), path.read_text(errors="replace").splitlines() if path.exists() else []
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            if j < len(lines):
                found[lines[j][:160]] += 1
    return found


# --- the afternoon: steps 1 to 4 ------------------------------------------------------------------


@live_fixture(scope="module")
def afternoon(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tour")
    schema, uri = own_schema_uri("tour") if ON_POSTGRES else (None, None)
    market_port = free_port()
    server = LiveServer(folder, workers=2, env=merchant_env(f"http://127.0.0.1:{market_port}", uri))
    # `isvapp fake-idp` registers the apps with LOGIN_REDIRECT_URI; its default is run.sh's port 8000
    server.env["ISVAPP_LOGIN_REDIRECT_URI"] = server.url + "/login/callback"
    procs, timings = [], {}
    try:
        started = time.monotonic()
        server.flask("init-db")
        server.flask("kit-keygen")  # README: the Kit key pair, its public key pasted in the Seller Console
        server.flask("create-admin", ADMIN, "--password", PASSWORD)
        market = Proc(folder, "fake-market", ["fake-market", "--port", str(market_port)], server.env)
        procs.append(market)
        server.start()
        wait_for_port(market_port, market)
        timings["start"] = time.monotonic() - started

        started = time.monotonic()
        suites = [a for s in SUITES for a in ("--suite", s)]
        sim = subprocess.run(
            [
                sys.executable,
                "-m",
                "flask",
                "--app",
                "isvapp",
                "simulate",
                server.url,
                *suites,
                "--generation",
                "both",
                "--probes",
                "--tolerance",
                "--json",
            ],
            cwd=ROOT,
            env=server.env,
            capture_output=True,
            text=True,
            timeout=150,
        )
        (folder / "simulate.out").write_text(sim.stdout)
        (folder / "simulate.err").write_text(sim.stderr)
        timings["simulate"] = time.monotonic() - started

        started = time.monotonic()
        worker = Proc(folder, "worker", ["worker"], server.env)
        procs.append(worker)
        engine = server.engine()
        settle_error = None
        try:
            timings["settle"] = settle(engine, [worker])
        except AssertionError as error:
            settle_error = str(error)
        yield dict(
            server=server,
            folder=folder,
            sim=sim,
            worker=worker,
            market=market,
            engine=engine,
            settle_error=settle_error,
            timings=timings,
            procs=procs,
        )
        engine.dispose()
    finally:
        for proc in procs:
            proc.stop()
        server.stop()
        if schema:
            drop_schema(schema)


@pytest.mark.any_database
def test_simulate_every_suite_both_generations_probes_and_tolerance_pass(afternoon):
    sim = afternoon["sim"]
    assert sim.stdout.lstrip().startswith("{"), f"exit {sim.returncode}\n{sim.stdout[-3000:]}\n{sim.stderr[-3000:]}"
    report = json.loads(sim.stdout)
    failed = [s for s in report["steps"] if not s["ok"]]
    assert not failed, "\n".join(
        f"{s['scenario']} / {s['step']}: expected {s['expected']} got {s['got']}: {s['reason']}" for s in failed
    )
    assert report["ok"] and sim.returncode == 0
    scenarios = {s["scenario"] for s in report["steps"]}
    for suite in SUITES:  # every suite ran (G2 and G1 where it has both)
        assert any(name.split(" ")[0] == suite for name in scenarios), suite
    assert {"period G1", "period G2", "negative probes", "tolerance probes"} <= scenarios
    # the Kit suite's account login: a buyer through the tenant's IdP, and an unauthorised one refused
    logins = [s["step"] for s in report["steps"] if s["step"].startswith("kit account login")]
    assert logins == ["kit account login (authorised user)", "kit account login refused (user not authorised)"]
    print(
        f"simulate: {len(report['steps'])} steps in {len(scenarios)} scenarios, "
        f"{afternoon['timings']['simulate']:.1f} s"
    )


@pytest.mark.any_database
def test_the_worker_settles_with_no_job_dead_or_failing(afternoon):
    engine, problems = afternoon["engine"], []
    if afternoon["settle_error"]:
        problems.append(afternoon["settle_error"])
    assert afternoon["worker"].alive(), afternoon["worker"].err_path.read_text()[-3000:]
    with engine.connect() as conn:
        jobs = conn.execute(select(Job).order_by(Job.id)).all()
        undetailed = conn.execute(
            select(Instance.instance_id, Instance.details_state).where(
                Instance.generation.in_(("G2", "LIC2")), Instance.details_state != "fetched"
            )
        ).all()
    counts = Counter((j.kind, j.state) for j in jobs)
    print("jobs:", dict(sorted(counts.items())))
    dead = [j for j in jobs if j.state == JobState.DEAD]
    failing = [j for j in jobs if j.last_error and j.state != JobState.DEAD]
    if dead:
        problems.append(f"{len(dead)} dead job(s):\n" + describe_jobs(dead))
    if failing:
        problems.append(f"{len(failing)} job(s) failing (last_error, retried later):\n" + describe_jobs(failing))
    if undetailed:
        problems.append(
            f"{len(undetailed)} G2/License-2.0 instance(s) without fetched order details: {undetailed[:10]}"
        )
    assert {k for k, _ in counts} >= {"provision", "fetch_order"}, counts
    assert not problems, "\n\n".join(problems)


@pytest.mark.any_database
def test_the_license_suites_reached_the_marketplace_uploads_activation_query_and_usage(afternoon):
    """The joints of License products: getLicenseAsync's license uploaded by the worker, and the
    simulator's installed software activated, verified and reported usage through the relay, all
    against the fake marketplace."""
    with afternoon["engine"].connect() as conn:
        uploads = conn.execute(select(License.upload_state).where(License.event_id.is_not(None))).scalars().all()
        codes = conn.execute(select(LicenseCode)).all()
    assert uploads and set(uploads) == {"uploaded"}, uploads
    assert [(c.code, bool(c.activated_at), bool(c.verified_at), c.usage_reports) for c in codes] == [
        ("PLXXXXXX", True, True, 1)
    ]


@pytest.mark.any_database
def test_a_pay_per_use_instance_reports_recorded_usage_in_its_query_and_the_worker_pushes_it(afternoon):
    """The pay-per-use joint: usage recorded with the merchant's command, answered in queryInstance
    at once, pushed by the running worker to the (fake) marketplace before its hour's deadline."""
    server, engine = afternoon["server"], afternoon["engine"]
    with engine.connect() as conn:
        iid = conn.execute(
            select(Instance.instance_id)
            .where(Instance.generation == "G1", Instance.charging_mode == "ON_DEMAND")
            .order_by(Instance.id)
            .limit(1)
        ).scalar_one()
    # Usage in the current hour, so it is not due yet (a quarter past the next hour) whatever the clock says.
    now = utcnow().replace(microsecond=0)
    begin = now.replace(minute=0, second=0)
    end = max(now, begin + timedelta(minutes=1))
    server.flask(
        "usage",
        "add",
        iid,
        "2.5",
        "--begin",
        f"{begin:%Y-%m-%dT%H:%M:%SZ}",
        "--end",
        f"{end:%Y-%m-%dT%H:%M:%SZ}",
        "--sn",
        f"tour-{uuid.uuid4().hex[:12]}",
    )
    params = g1_signed_params(
        KEY,
        {
            "activity": "queryInstance",
            "instanceId": iid,
            "testFlag": "1",
            "timeStamp": utcnow().strftime("%Y%m%d%H%M%S000"),
        },
    )
    answer = requests.get(server.url + "/produce?" + urlencode(params), timeout=10).json()
    assert answer["info"][0]["usageInfo"] == [{"usageValue": 2.5}], answer
    settle(engine, [afternoon["worker"]])
    with engine.connect() as conn:
        state, late = conn.execute(
            select(UsageRecord.state, UsageRecord.late).where(
                UsageRecord.instance_id == iid, UsageRecord.usage_value == "2.5"
            )
        ).one()
    assert (state, late) == ("pushed", False)


# --- step 5: the pages in Chromium ------------------------------------------------------------------

NAV = [
    "/admin/",
    "/admin/go-live",
    "/admin/instances",
    "/admin/licenses",
    "/admin/license-codes",
    "/admin/tenants",
    "/admin/callbacks",
    "/admin/jobs",
    "/admin/alerts",
]
WORDS = {"en": ("en", "Overview"), "zh": ("zh-CN", "概览")}
DETAIL_PREFIXES = {
    "instances": "/admin/instances/",
    "licenses": "/admin/licenses/",
    "tenants": "/admin/tenants/",
    "callbacks": "/admin/callbacks/",
    "jobs": "/admin/jobs/",
}


def kinds_from_database(engine):
    """One link for every distinct kind of row each list holds: {list: {kind: detail path}}."""
    with engine.connect() as conn:
        instances = conn.execute(
            select(
                Instance.instance_id, Instance.state, Instance.generation, Instance.product_type, Instance.test_flag
            ).order_by(Instance.id)
        ).all()
        licenses = conn.execute(select(License.license_id, License.state, License.test_flag).order_by(License.id)).all()
        tenants = conn.execute(select(Tenant.id).order_by(Tenant.id)).all()
        callbacks = conn.execute(
            select(
                Callback.id,
                Callback.activity,
                Callback.result_code,
                Callback.generation,
                Callback.method,
                Callback.path,
            ).order_by(Callback.id)
        ).all()
        jobs = conn.execute(select(Job.id, Job.kind, Job.state).order_by(Job.id)).all()
    kinds = defaultdict(dict)
    for r in jobs:
        kinds["jobs"].setdefault((r.kind, r.state), f"/admin/jobs/{r.id}")
    for r in instances:
        kinds["instances"].setdefault(
            (r.state, r.generation, r.product_type, r.test_flag), f"/admin/instances/{r.instance_id}"
        )
    for r in licenses:
        kinds["licenses"].setdefault((r.state, r.test_flag), f"/admin/licenses/{r.license_id}")
    for r in tenants:
        kinds["tenants"].setdefault(r.id, f"/admin/tenants/{r.id}")
    for r in callbacks:
        kinds["callbacks"].setdefault(
            (r.activity, r.result_code, r.generation, r.method, (r.path or "").rstrip("/")), f"/admin/callbacks/{r.id}"
        )
    return kinds, instances, licenses, callbacks


def filter_urls(engine):
    """Each list with each of its filters set (one at a time, over all data, and the data filter itself)."""
    kinds, instances, licenses, callbacks = kinds_from_database(engine)
    today = datetime.now().strftime("%Y-%m-%d")
    first = lambda rows, attr: next((getattr(r, attr) for r in rows if getattr(r, attr)), "none")  # noqa: E731
    with engine.connect() as conn:
        product = conn.execute(select(Instance.product_id).where(Instance.product_id.is_not(None)).limit(1)).scalar()
        order = conn.execute(select(Instance.order_id).limit(1)).scalar()
        customer = conn.execute(
            select(Instance.customer_name).where(Instance.customer_name.is_not(None)).limit(1)
        ).scalar()
        tenant = conn.execute(select(Tenant.tenant_id).limit(1)).scalar()
    lists = {
        "/admin/instances": [
            {"state": s} for s in sorted({r.state for r in instances} | {"ACTIVE", "FROZEN", "RELEASED"})
        ]
        + [{"data": d} for d in ("real", "test", "all")]
        + [
            {"sort": "expire"},
            {"expiring": "30", "sort": "expire"},
            {"expiring": "7", "sort": "expire"},
            {"product": product or "none"},
            {"q": order or "none"},
            {"q": (customer or "none")[:3]},
        ],
        "/admin/licenses": [{"state": s} for s in sorted({r.state for r in licenses})]
        + [{"data": d} for d in ("real", "test", "all")]
        + [{"q": first(licenses, "license_id")}],
        "/admin/tenants": [{}, {"q": tenant or "none"}],
        "/admin/callbacks": [{"activity": a} for a in sorted({r.activity for r in callbacks if r.activity})]
        + [{"code": c} for c in sorted({r.result_code for r in callbacks if r.result_code}) + ["fail"]]
        + [{"warned": "1"}, {"from": today}, {"to": today}, {"from": today, "to": today}, {"q": order or "none"}],
    }
    urls = []
    for path, filters in lists.items():
        for f in filters:
            if path != "/admin/callbacks" and path != "/admin/tenants" and "data" not in f:
                f = {**f, "data": "all"}
            urls.append(path + ("?" + urlencode(f) if f else ""))
    return kinds, urls


class Tour:
    """One language's tour: every navigation's status and HTML checked, subresources and console watched."""

    def __init__(self, context, base, lang):
        self.context, self.base, self.lang = context, base, lang
        self.page = context.new_page()
        self.problems, self.visited, self.fetched = [], {}, {}
        self.page.on("response", self._subresource)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error on {self.page.url}: {e}"))

    def _console(self, message):
        # Chromium asks every new site for /favicon.ico; isvapp has none (a 404, not a page's fault).
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            self.problems.append(f"console error on {self.page.url}: {message.text} {message.location}")

    def _subresource(self, response):
        if response.status >= 400 and response.url.startswith(self.base):
            self.problems.append(f"{response.status} for {response.request.resource_type} {response.url}")

    def absolute(self, url):
        return urljoin(self.base + "/", url)

    SNAPSHOT = """() => ({lang: document.documentElement.lang, html: document.documentElement.outerHTML,
        header: (document.querySelector('header') || {innerText: ''}).innerText,
        links: [...document.querySelectorAll('a[href]')].map(a => a.href),
        images: [...document.images].map(i => i.src),
        broken: [...document.images].filter(i => i.complete && !i.naturalWidth).map(i => i.src)})"""

    def check_html(self, url, snapshot=None):
        snapshot = snapshot or self.page.evaluate(self.SNAPSHOT)
        for bad in ("Traceback", "Internal Server Error"):
            if bad in snapshot["html"]:
                self.problems.append(f"{url}: the page contains {bad!r}")
        html_lang, word = WORDS[self.lang]
        if snapshot["lang"] != html_lang:
            self.problems.append(f"{url}: <html lang={snapshot['lang']!r}>, expected {html_lang!r}")
        if word not in snapshot["header"]:
            self.problems.append(f"{url}: no {word!r} in the header")
        return snapshot

    def visit(self, url):
        url = self.absolute(url)
        if url in self.visited:
            return []
        # Only the overview has pictures: wait for them to load there (and check they rendered).
        wait = "load" if urlsplit(url).path == "/admin/" else "domcontentloaded"
        try:
            response = self.page.goto(url, wait_until=wait, timeout=30000)
        except Exception as error:  # noqa: BLE001  a navigation that fails is one more problem
            self.visited[url] = None
            self.problems.append(f"{url}: navigation failed: {error}")
            return []
        status = response.status if response else None
        self.visited[url] = status
        if status != 200:
            self.problems.append(f"{url}: HTTP {status}: {self.page.inner_text('body')[:300]!r}")
            return []
        snapshot = self.check_html(url)
        for src in snapshot["images"]:
            self.fetch(src, "image/svg+xml", b"<svg")
        if wait == "load" and snapshot["broken"]:
            self.problems.append(f"{url}: image(s) did not render: {snapshot['broken']}")
        return [link for link in snapshot["links"] if link.startswith(self.base + "/admin") and "lang=" not in link]

    def fetch(self, url, content_type, starts):
        url = self.absolute(url)
        if url in self.fetched:
            return
        response = self.context.request.get(url, timeout=30000)
        self.fetched[url] = response.status
        body = response.body()
        if response.status != 200:
            self.problems.append(f"{url}: HTTP {response.status}: {body[:300]!r}")
        elif not response.headers.get("content-type", "").startswith(content_type) or not body.lstrip().startswith(
            starts
        ):
            self.problems.append(f"{url}: {response.headers.get('content-type')} {body[:100]!r}")
        elif b"Traceback" in body:
            self.problems.append(f"{url}: the body contains 'Traceback'")
        elif content_type == "text/csv":
            rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
            if not rows or not rows[0]:
                self.problems.append(f"{url}: no CSV header")


def log_in_and_pick_language(tour):
    page, base = tour.page, tour.base
    response = page.goto(base + "/admin/instances")
    assert "/admin/login" in page.url and response.status == 200, (page.url, response.status)
    page.fill("input[name=name]", ADMIN)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation() as navigation:
        page.click("button[type=submit]")
    assert navigation.value.status == 200 and "/admin/instances" in page.url, (navigation.value.status, page.url)
    # The language switch in the header: a ?lang= link, kept for the next pages in the "lang" cookie.
    with page.expect_navigation() as navigation:
        page.click("header a[lang=%s]" % ("zh-CN" if tour.lang == "zh" else "en"))
    assert navigation.value.status == 200 and f"lang={tour.lang}" in page.url
    cookies = {c["name"]: c["value"] for c in tour.context.cookies()}
    assert cookies.get("lang") == tour.lang, cookies


def reveal_credentials(tour, detail_urls):
    """The one POST on the pages: Show credentials on an instance that has them."""
    for url in detail_urls:
        tour.page.goto(tour.absolute(url))
        if tour.page.locator("#reveal").count():
            with tour.page.expect_navigation() as navigation:
                tour.page.click("#reveal")
            status = navigation.value.status
            if status != 200 or tour.page.locator("#password").count() != 1:
                tour.problems.append(
                    f"Show credentials on {url}: HTTP {status}, "
                    f"{tour.page.locator('#password').count()} password element(s)"
                )
            else:
                tour.check_html(url + " (credentials shown)")
            return url
    tour.problems.append("no instance page offers Show credentials")
    return None


def walk(tour, kinds, urls):
    """Every navigation page and what it links to, every filter, the pagers, a sample of detail
    pages from the lists (SAMPLE each, plus one of every kind), the CSV exports and the charts."""
    pending = list(NAV) + urls
    lists, details = defaultdict(list), defaultdict(list)
    pages_per_list = Counter()
    while pending:
        url = pending.pop(0)
        path = urlsplit(tour.absolute(url)).path
        links = tour.visit(url)
        for link in links:
            parts = urlsplit(link)
            if parts.path.endswith(".csv"):
                tour.fetch(link, "text/csv", b"")
            elif parts.path.endswith(".svg"):
                tour.fetch(link, "image/svg+xml", b"<svg")
            elif any(parts.path.startswith(p) and parts.path != p.rstrip("/") for p in DETAIL_PREFIXES.values()):
                name = next(n for n, p in DETAIL_PREFIXES.items() if parts.path.startswith(p))
                if link not in details[name]:
                    details[name].append(link)
            elif link not in tour.visited and link not in pending and tour.absolute(link) not in pending:
                # a filter link or a pager link of a list: followed, at most 10 pages deep per list
                if "page=" in parts.query:
                    if pages_per_list[parts.path] >= 10:
                        continue
                    pages_per_list[parts.path] += 1
                pending.append(link)
        lists[path].append(url)
    # The detail pages: SAMPLE linked from each list, plus one of every distinct kind (linked or not).
    chosen, unlinked = [], []
    for name, by_kind in kinds.items():
        linked = details.get(name, [])
        picked = linked[:SAMPLE]
        for kind, detail in by_kind.items():
            absolute = tour.absolute(detail)
            if absolute not in picked:
                picked.append(absolute)
            if absolute not in linked:
                unlinked.append((name, kind, detail))
        chosen += picked
    for detail in chosen:
        for link in tour.visit(detail):  # a detail page's own links (its instance, its callbacks ...)
            if urlsplit(link).path.endswith(".csv"):
                tour.fetch(link, "text/csv", b"")
    return details, chosen, unlinked


@pytest.mark.any_database
@pytest.mark.once_beside  # 53 s: in the PostgreSQL run, the shorter, when the runs are side by side
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_page_filter_detail_export_and_chart_in_both_languages(afternoon, lang):
    from playwright.sync_api import sync_playwright

    server = afternoon["server"]
    started = time.monotonic()
    kinds, urls = filter_urls(afternoon["engine"])
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            # The browser's own language is the other one: the switch in the header decides.
            context = browser.new_context(locale="en-US" if lang == "zh" else "zh-CN")
            tour = Tour(context, server.url, lang)
            log_in_and_pick_language(tour)
            details, chosen, unlinked = walk(tour, kinds, urls)
            revealed = reveal_credentials(tour, [u for u in chosen if "/admin/instances/" in u])
        finally:
            browser.close()
    navigations = sum(1 for _ in tour.visited)
    detail_counts = {
        name: sum(1 for u in tour.visited if urlsplit(u).path.startswith(p)) for name, p in DETAIL_PREFIXES.items()
    }
    print(
        f"\n[{lang}] {navigations} pages visited ({detail_counts} detail pages; "
        f"{sum(len(v) for v in details.values())} detail links seen on the lists), "
        f"{len(tour.fetched)} CSV/SVG fetched, credentials shown on {revealed}, "
        f"{time.monotonic() - started:.1f} s"
    )
    if unlinked:
        print(f"[{lang}] kinds not linked from the lists' first pages (visited directly): {len(unlinked)}")
    assert all(detail_counts[name] >= min(SAMPLE, len(kinds.get(name, {}))) for name in DETAIL_PREFIXES), detail_counts
    assert sum(1 for u in tour.fetched if ".csv" in u) >= 3 and sum(1 for u in tour.fetched if ".svg" in u) >= 3
    assert not tour.problems, f"{len(tour.problems)} problem(s) in the {lang} tour:\n" + "\n".join(
        dict.fromkeys(tour.problems)
    )


class ChineseTour(Tour):
    """The Chinese tour, reading every page as a Chinese reader does: an English word left (data and
    code aside, tests/pagetext.py) or a badge or column header broken over lines is a problem."""

    def __init__(self, context, base):
        super().__init__(context, base, "zh")
        self.english, self.wrapped = defaultdict(set), defaultdict(set)

    def check_html(self, url, snapshot=None):
        snapshot = super().check_html(url, snapshot)
        # visit() waits for the DOM only: a line is measured once the stylesheet (its nowrap) applies.
        self.page.wait_for_load_state("load")
        seen = pagetext.read(self.page)
        where = urlsplit(url).path
        for word, texts in seen["english"].items():
            self.english[word].add(f"{where}: {texts[0]}")
        for element in seen["wrapped"]:
            self.wrapped[element].add(where)
        return snapshot

    def read_chart(self, url):
        """A chart's words: its SVG's text (titles, legends, the empty chart's sentence)."""
        body = self.context.request.get(self.absolute(url), timeout=30000).text()
        for shown in re.findall(r"<text[^>]*>([^<]+)</text>", body):
            for word in pagetext.english_words(shown):
                self.english[word].add(f"{urlsplit(url).path}: {shown[:80]}")


def strangers_raise_an_alert(server, engine):
    """The go-live page's alerts get a row the simulation does not leave: a stranger's requests
    signed with another key, until "signature failures are repeating" (bounded); the alert count."""
    session = requests.Session()
    for n in range(12):
        raw, query = g2_signed_request("not-the-key", {"activity": "newInstance", "orderId": f"STRANGER{n}"})
        session.post(server.url + "/produce", params=query, data=raw, timeout=10)
    deadline = time.monotonic() + 10
    while True:
        with engine.connect() as conn:
            found = conn.execute(select(func.count()).select_from(Alert)).scalar_one()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def make_a_token_and_save_a_hand_off_url(tour, engine):
    """What only a merchant's click puts on a page: an API token (its list), a hand-off URL (its
    confirmation)."""
    page = tour.page
    page.goto(tour.absolute("/admin/api-tokens"))
    page.fill("input[name=name]", "tour")
    page.check("input[name=scope][value=entitlements]")  # a token is for a scope and a product or key
    page.fill("input[name=product_id]", "00301-666666-0--0")
    with page.expect_navigation():
        page.click("main form button[type=submit]:not([name])")
    tour.check_html("/admin/api-tokens (token made)")
    with engine.connect() as conn:
        tenant = conn.execute(select(Tenant.id).order_by(Tenant.id).limit(1)).scalar()
    if tenant is not None:
        page.goto(tour.absolute(f"/admin/tenants/{tenant}"))
        if page.locator("input[name=handoff_url]").count():
            page.fill("input[name=handoff_url] >> nth=0", "https://app.example.com/sso")
            with page.expect_navigation():
                page.click("input[name=handoff_url] >> nth=0 >> xpath=../button")
            tour.check_html(f"/admin/tenants/{tenant} (hand-off saved)")


@pytest.mark.any_database
def test_the_chinese_pages_show_no_english_and_no_badge_or_header_wraps(afternoon):
    """Every page of the tour in Chinese, with the data the simulation left: no English word on any
    (products, identifiers, settings, codes and URLs aside: tests/pagetext.py), and no status badge
    or column header broken over two lines."""
    from playwright.sync_api import sync_playwright

    server = afternoon["server"]
    kinds, urls = filter_urls(afternoon["engine"])
    alerts_kept = strangers_raise_an_alert(server, afternoon["engine"])
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
            tour = ChineseTour(context, server.url)
            log_in_and_pick_language(tour)
            make_a_token_and_save_a_hand_off_url(tour, afternoon["engine"])
            walk(tour, kinds, urls + ["/admin/api-tokens", "/admin/login"])
            for chart in ("callbacks", "orders", "expiring"):
                tour.read_chart(f"/admin/charts/{chart}.svg?lang=zh")
        finally:
            browser.close()
    pages = sum(1 for status in tour.visited.values() if status == 200)
    print(f"\n[zh] {pages} pages read, {alerts_kept} alert(s) on the go-live page")
    assert pages > 50 and alerts_kept, (pages, alerts_kept)
    assert not tour.problems, "\n".join(dict.fromkeys(tour.problems))
    english = "\n".join(f"  {word}: {sorted(where)[:3]}" for word, where in sorted(tour.english.items()))
    wrapped = "\n".join(f"  {element} on {sorted(where)[:3]}" for element, where in sorted(tour.wrapped.items()))
    assert not tour.english and not tour.wrapped, (
        f"English on the Chinese pages:\n{english}\nbroken over lines:\n{wrapped}"
    )


# --- step 5b: the buyer's login, clicked ----------------------------------------------------------------


def buyer_signs_in(page, user):
    page.wait_for_selector("input[name=userName]", timeout=30000)
    page.fill("input[name=userName]", user)
    page.fill("input[name=password]", "fake-password")
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/oauth2/" not in u, timeout=30000)
    page.wait_for_load_state("load")


@pytest.mark.parametrize("lang, locale", [("en", "en-US"), ("zh", "zh-CN")])
def test_the_buyers_login_clicked_from_the_chooser_and_out_again_and_a_refused_buyer_switches(afternoon, lang, locale):
    """README, "Trying the login on this host": `isvapp fake-idp-tenant`, `isvapp fake-idp`, then a
    buyer in Chromium types the enterprise's code into the chooser, signs in at the IdP, lands on
    the signed-in page and signs out; a disabled one is refused and signs in as someone else. Every
    button clicked, none blocked by the pages' Content-Security-Policy."""
    from playwright.sync_api import sync_playwright

    server, folder = afternoon["server"], afternoon["folder"]
    idp_port = free_port()
    made = server.flask("fake-idp-tenant", server.url, "--idp-port", str(idp_port))
    assert "FAIL" not in made.stdout and "/login/demo" in made.stdout, made.stdout
    idp = Proc(folder, f"fake-idp-{lang}", ["fake-idp", "--port", str(idp_port)], server.env)
    afternoon["procs"].append(idp)
    wait_for_port(idp_port, idp)
    messages = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            for user, refused_first in (("alice", False), ("carol", True)):
                page = browser.new_context(locale=locale).new_page()
                page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
                page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
                page.goto(f"{server.url}/login?lang={lang}")
                page.fill("#tenant", "demo")
                page.click("button[type=submit]")
                buyer_signs_in(page, user)
                if refused_first:
                    assert page.locator('[data-reason="user_disabled"]').count() == 1, page.inner_text("main")
                    page.click("#switch")
                    buyer_signs_in(page, "bob")
                signed_out = page.locator("form[action='/logout'] button")
                signed_out.wait_for(timeout=30000)
                assert ("Bob" if refused_first else "Alice") in page.inner_text("main")
                signed_out.click()
                page.wait_for_url(f"{server.url}/login/logged-out", timeout=30000)
                assert page.evaluate("document.documentElement.lang") == ("zh-CN" if lang == "zh" else "en")
        finally:
            browser.close()
    assert not [m for m in messages if "Content Security Policy" in m or m.startswith("pageerror")], messages


# --- step 6: the logs --------------------------------------------------------------------------------


def test_no_traceback_in_any_log(afternoon):
    """Last in the module: after the simulator, the worker and the pages (in both runs: the
    PostgreSQL run walks the pages too)."""
    server, folder = afternoon["server"], afternoon["folder"]
    server.log.flush()
    paths = {"gunicorn": server.instance_path / "gunicorn.log", "simulate stderr": folder / "simulate.err"}
    for proc in afternoon["procs"]:
        proc.out.flush()
        proc.err.flush()
        paths.update(proc.logs())
    found = tracebacks(paths)
    assert not found, "\n\n".join(f"=== {name}\n{excerpt}" for name, excerpt in found.items())
    print("timings:", {k: round(v, 1) for k, v in afternoon["timings"].items()})


# --- step 7: two hosts, two workers, one PostgreSQL, restarted under load ------------------------------


def signed_new_instance(order):
    body = {
        "activity": "newInstance",
        "orderId": order,
        "orderLineId": f"{order}-000001",
        "testFlag": "0",
        "businessId": f"biz-{order}",
    }
    return g2_signed_request(KEY, body)


def send_order(url, order, session):
    """One signed newInstance (freshly signed, as each marketplace retry is): (resultCode, instanceId)."""
    raw, query = signed_new_instance(order)
    try:
        answer = session.post(
            url + "/produce", params=query, data=raw, timeout=10, headers={"Content-Type": "application/json"}
        )
        body = answer.json()
        return body.get("resultCode"), body.get("instanceId")
    except (requests.RequestException, ValueError) as error:
        return f"error {type(error).__name__}", None


class Load:
    """Threads sending signed newInstance orders at the servers, round robin, until stopped."""

    def __init__(self, urls, threads_per_url=1, prefix="PG", pause_s=0.2):
        self.urls, self.answers, self.lock, self.pause_s = urls, {}, threading.Lock(), pause_s
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(url, f"{prefix}{n}{i}"), daemon=True)
            for n, url in enumerate(urls)
            for i in range(threads_per_url)
        ]

    def _run(self, url, prefix):
        session, n = requests.Session(), 0
        while not self.stopping.is_set():
            order = f"{prefix}X{n:05d}"
            n += 1
            code, instance_id = send_order(url, order, session)
            with self.lock:
                self.answers[order] = (url, code, instance_id, time.monotonic())
            time.sleep(self.pause_s)  # a steady stream the two workers can keep up with on 2 cores

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(15)


def pgctl_module():
    try:
        from . import pgctl
    except ImportError:
        return None
    return pgctl if pgctl.available() else None


@pytest.mark.live
@pytest.mark.skipif(not ON_POSTGRES, reason="two hosts on one PostgreSQL, restarted under load")
def test_two_hosts_two_workers_carry_on_through_a_postgres_restart(tmp_path):
    pgctl = pgctl_module()
    if pgctl is None:
        pytest.skip("tests/pgctl.py cannot restart this PostgreSQL (run through scripts/with-postgres.sh)")
    schema, uri = own_schema_uri("tourpg")
    market_port = free_port()
    env = merchant_env(f"http://127.0.0.1:{market_port}", uri)
    servers = [LiveServer(tmp_path / f"host{n}", workers=2, env=env) for n in (1, 2)]
    procs, engine = [], None
    try:
        for server in servers:
            server.instance_path.mkdir()
            server.start()  # init-db, then gunicorn (one after the other: the schema is made once)
        market = Proc(tmp_path, "fake-market", ["fake-market", "--port", str(market_port)], servers[0].env)
        procs.append(market)
        wait_for_port(market_port, market)
        workers = [
            Proc(server.instance_path, f"worker{n}", ["worker"], server.env) for n, server in enumerate(servers, 1)
        ]
        procs += workers
        engine = servers[0].engine()
        urls = [s.url for s in servers]
        session = requests.Session()
        for n, url in enumerate(urls):  # both hosts answer, and both workers are at work, before the load
            assert send_order(url, f"PGWARM{n}", session)[0] == "000000"
        settle(engine, workers)

        with Load(urls) as load:
            time.sleep(3)
            before = len(load.answers)
            stopping_at = utcnow()
            down_s = pgctl.restart_postgres(down_s=3.0)
            back_at, back_utc = time.monotonic(), utcnow()
            time.sleep(5)  # the load carries on after the restart
        answers = dict(load.answers)
        codes = Counter(code for _, code, _, _ in answers.values())
        after = [o for o, (_, code, _, at) in answers.items() if at > back_at + 1 and code == "000000"]
        print(
            f"\nload: {len(answers)} orders ({before} before the restart), answers {dict(codes)}, "
            f"PostgreSQL down {down_s:.1f} s, {len(after)} acknowledged from 1 s after it was back"
        )
        problems = []
        for server in servers:
            if server.proc.poll() is not None:
                problems.append(f"gunicorn {server.url} exited")
        for worker in workers:
            if not worker.alive():
                problems.append(f"{worker.name} exited: {worker.err_path.read_text()[-2000:]}")
        for server in servers:  # each host answers by itself: health and a new order
            status = None
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    status = requests.get(server.url + "/healthz", timeout=5).status_code
                except requests.RequestException as error:
                    status = repr(error)
                if status == 200:
                    break
                time.sleep(0.5)
            if status != 200:
                problems.append(f"{server.url}/healthz after the restart: {status}")
        for url in urls:
            if not any(a[0] == url for o, a in answers.items() if o in after):
                problems.append(f"{url} acknowledged no order after PostgreSQL was back")
        # The marketplace retries what was not acknowledged: every such order succeeds now, at either host.
        retried = {}
        for order, (_, code, _, _) in sorted(answers.items()):
            if code != "000000":
                retried[order] = send_order(urls[hash(order) % 2], order, session)
        bad_retries = {o: a for o, a in retried.items() if a[0] != "000000"}
        if bad_retries:
            problems.append(f"{len(bad_retries)} retried order(s) not acknowledged: {list(bad_retries.items())[:10]}")
        # And some fresh orders after the restart, so both workers have work to show they carry on.
        fresh_from = utcnow()
        for n in range(20):
            order = f"PGAFTER{n:03d}"
            answers[order] = (urls[n % 2], *send_order(urls[n % 2], order, session), time.monotonic())
            if answers[order][1] != "000000":
                problems.append(f"fresh order {order} at {urls[n % 2]}: {answers[order][1]}")
        try:
            settle(engine, workers, timeout=120)
        except AssertionError as error:
            problems.append(str(error))

        acknowledged = {o: iid for o, (_, code, iid, _) in answers.items() if code == "000000"}
        acknowledged.update({o: a[1] for o, a in retried.items() if a[0] == "000000"})
        with engine.connect() as conn:
            rows = conn.execute(
                select(Instance.order_id, Instance.instance_id).where(Instance.order_id.in_(list(answers)))
            ).all()
            jobs = conn.execute(select(Job).where(Job.kind.in_(("provision", "fetch_order")))).all()
            others = conn.execute(select(Job).where(Job.kind.not_in(("provision", "fetch_order")))).all()
            events = conn.execute(select(Event.event_id, Event.kind, Event.instance_id)).all()
        by_order = defaultdict(list)
        for order, iid in rows:
            by_order[order].append(iid)
        lost = [o for o in acknowledged if o not in by_order]
        doubled = {o: v for o, v in by_order.items() if len(v) != 1}
        mismatched = {
            o: (acknowledged[o], by_order[o])
            for o in acknowledged
            if o in by_order and by_order[o] != [acknowledged[o]]
        }
        if lost:
            problems.append(f"{len(lost)} acknowledged order(s) have no instance: {lost[:10]}")
        if doubled:
            problems.append(f"{len(doubled)} order(s) have more than one instance: {list(doubled.items())[:10]}")
        if mismatched:
            problems.append(f"{len(mismatched)} order(s) answered another instanceId: {list(mismatched.items())[:10]}")
        # newInstance (lifecycle.new_instance -> emit "created") enqueues a provision and a fetch_order job,
        # keyed by the event; the fetched order (orderdetails) emits "details_fetched", with its provision job.
        expected = {
            "created": Counter({"provision": 1, "fetch_order": 1}),
            "details_fetched": Counter({"provision": 1}),
        }
        jobs_of = defaultdict(list)
        for job in jobs:
            jobs_of[job.key].append(job)
        events_of = defaultdict(list)
        for event in events:
            events_of[event.instance_id].append(event)
        wrong_jobs = {}
        for order, iid in acknowledged.items():
            mine = events_of.get(iid, [])
            found = {e.kind: [(j.kind, j.state, j.attempts) for j in jobs_of.get(e.event_id, [])] for e in mine}
            if Counter(e.kind for e in mine) != Counter(list(expected)) or any(
                Counter(k for k, _, _ in found[kind]) != expected[kind]
                or any(state != JobState.DONE for _, state, _ in found[kind])
                for kind in expected
            ):
                wrong_jobs[order] = found
        if wrong_jobs:
            problems.append(
                f"{len(wrong_jobs)} acknowledged order(s) without exactly one created and one "
                f"details_fetched event, each with its jobs done once: {list(wrong_jobs.items())[:10]}"
            )
        attempts = Counter(j.attempts for j in jobs)
        pids = {f"{socket.gethostname()}:{w.proc.pid}": w.name for w in workers}
        worked = {
            when: Counter(pids.get(j.locked_by, j.locked_by) for j in jobs if j.finished_at and test(j))
            for when, test in (
                ("before", lambda j: j.finished_at < stopping_at),
                ("after", lambda j: j.finished_at >= back_utc),
                ("after the retries", lambda j: j.finished_at >= fresh_from),
            )
        }
        worked_after = worked["after"]
        for worker in workers:
            if not worked_after.get(worker.name):
                problems.append(f"{worker.name} finished no job after the restart: {worked}")
        unfinished = [j for j in others if j.state == JobState.DEAD]
        if unfinished:
            problems.append(f"dead job(s): {describe_jobs(unfinished)}")
        print(
            f"instances {len(rows)} for {len(acknowledged)} acknowledged orders; jobs {len(jobs)}, attempts "
            f"{dict(attempts)}; finished by {worked}; other jobs "
            f"{dict(Counter((j.kind, j.state) for j in others))}"
        )
        logs = {
            "gunicorn host1": servers[0].instance_path / "gunicorn.log",
            "gunicorn host2": servers[1].instance_path / "gunicorn.log",
        }
        for proc in procs:
            proc.out.flush()
            proc.err.flush()
            logs.update(proc.logs())
        for name, path in logs.items():  # an outage may log errors; shown, not failed on
            for line, count in exceptions(path).most_common(8):
                print(f"--- {name}: {count} x {line}")
        assert not problems, "\n".join(problems)
    finally:
        if engine is not None:
            engine.dispose()
        for proc in procs:
            proc.stop()
        for server in servers:
            server.stop()
        drop_schema(schema)
