"""The marketplace simulator against a live isvapp (all suites pass) and a broken server (it says so)."""

import json
import subprocess
import sys
import uuid

import pytest
from isvapp.koo.envelope import envelope
from isvapp.koo.signing import body_sign
from isvapp.standins import simulator
from isvapp.standins.fakemarket import create_fake_market
from isvapp.standins.serving import Running
from isvapp.storage.models import KitUser, StatusItem
from sqlalchemy import func, select
from werkzeug.wrappers import Request, Response

from .helpers import KEY, KIT_KEY
from .live import ROOT, LiveServer
from .tiers import live_fixture

# the simulator's suites, probes and report: the callbacks' database work runs on both databases in process
pytestmark = pytest.mark.any_database


@live_fixture(scope="module")
def live(tmp_path_factory):
    """isvapp under gunicorn, with a fake marketplace for the License relay's calls."""
    folder = tmp_path_factory.mktemp("sim")
    with Running(create_fake_market("sim-ak", "sim-sk", KEY)) as market_api:
        env = {
            "ISVAPP_KOO_ACCESS_KEY": KEY,
            "ISVAPP_KOO_KIT_ACCESS_KEY": KIT_KEY,
            "ISVAPP_KOO_API_BASE_URL": market_api.url,
            "ISVAPP_KOO_AK": "sim-ak",
            "ISVAPP_KOO_SK": "sim-sk",
            "ISVAPP_LOGIN_ALLOW_LOOPBACK_IDP": "true",  # the Kit suite's account login uses its own IdP here
        }
        server = LiveServer(folder, workers=2, env=env)
        server.flask("init-db")
        public = folder / "kit_public.pem"
        public.write_text(server.flask("kit-keygen").stdout)
        with server:
            yield server, public


def test_every_suite_and_probe_passes_against_isvapp(live):
    server, public = live
    sim = simulator.run(
        simulator.Simulator(server.url + "/produce", KEY, KIT_KEY, public.read_bytes()),
        simulator.SUITES,
        "both",
        with_probes=True,
    )
    assert sim.failed == [], simulator.report(sim)
    scenarios = {s.scenario for s in sim.steps}
    assert {
        "period G1",
        "period G2",
        "cancel G2",
        "kit",
        "license-g1",
        "license-2",
        "license-relay",
        "negative probes",
    } <= scenarios
    assert len(sim.steps) > 80
    assert all(s.got == s.expected for s in sim.steps)
    # the Kit suite's account login, through the simulator's own IdP, and the refused outsider
    steps = {s.step: s for s in sim.steps if s.scenario == "kit"}
    assert (
        steps["kit account login (authorised user)"].ok and steps["kit account login refused (user not authorised)"].ok
    )
    # ... recorded as the merchant's own simulation, not as the Seller Console's login test
    engine = server.engine()
    with engine.connect() as conn:
        assert conn.execute(select(StatusItem.value).where(StatusItem.name == "simulated_login")).scalar_one()
        assert conn.execute(select(func.count()).where(KitUser.last_login_at.is_not(None))).scalar_one() == 0
    engine.dispose()


@pytest.mark.live
def test_on_default_settings_the_account_login_is_skipped_saying_how_to_run_it(tmp_path):
    """LOGIN_ALLOW_LOOPBACK_IDP off (production's setting): the server refuses the simulator's IdP
    on this host, so the login is not played, and the report says why and how (not a failure)."""
    server = LiveServer(tmp_path, workers=1, env={"ISVAPP_KOO_ACCESS_KEY": KEY, "ISVAPP_KOO_KIT_ACCESS_KEY": KIT_KEY})
    server.flask("init-db")
    public = server.flask("kit-keygen").stdout.encode()
    with server:
        sim = simulator.run(simulator.Simulator(server.url, KEY, KIT_KEY, public), ["kit"])
    assert sim.failed == [], simulator.report(sim)
    assert not [s for s in sim.steps if "account login" in s.step]
    assert [s.scenario for s in sim.skipped] == ["kit"] and "LOGIN_ALLOW_LOOPBACK_IDP" in sim.skipped[0].reason


def test_console_script_prints_json_and_exits_zero(live):
    server, _ = live
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from isvapp.standins.simulator import main; main()",
            server.url,
            "--suite",
            "onetime",
            "--json",
            "--key",
            KEY,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and [s["step"] for s in report["steps"]][:2] == ["newInstance", "newInstance retried"]


def test_wrong_key_makes_every_step_fail_with_a_non_zero_exit(live):
    server, _ = live
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from isvapp.standins.simulator import main; main()",
            server.url,
            "--suite",
            "onetime",
            "--key",
            "not-the-key",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "FAIL: resultCode 000001" in result.stdout


class BrokenServer:
    """Signs G1 answers wrongly, gives a retried order a new instanceId, refuses a second release,
    and accepts anything (so every negative probe goes unrefused)."""

    def __init__(self):
        self.released = set()

    def __call__(self, environ, start_response):
        request = Request(environ)
        params = dict(request.args)
        if request.method == "POST" and request.path == "/produce":
            params = json.loads(request.get_data() or b"{}") if request.get_data().startswith(b"{") else {}
        activity = params.get("activity")
        if activity == "newInstance":
            body = envelope(instanceId=uuid.uuid4().hex)
        elif activity == "releaseInstance" and params.get("instanceId") in self.released:
            body = envelope("000003", "instance gone")
        else:
            self.released.add(params.get("instanceId"))
            body = envelope()
        headers = {"Content-Type": "application/json", "Body-Sign": body_sign("some-other-key", body)}
        return Response(body, 200, headers=headers)(environ, start_response)


@live_fixture
def broken():
    with Running(BrokenServer()) as running:
        yield running.url


def test_the_broken_server_is_reported_exactly(broken):
    sim = simulator.run(simulator.Simulator(broken, KEY), ["onetime"], "both", with_probes=True)
    failures = {(s.scenario, s.step): s.reason for s in sim.failed}
    assert set(failures) == {
        ("onetime G2", "newInstance retried"),
        ("onetime G2", "releaseInstance again (idempotent)"),
        ("onetime G1", "newInstance"),
        ("onetime G1", "newInstance retried"),
        ("onetime G1", "releaseInstance"),
        ("onetime G1", "releaseInstance again (idempotent)"),
        ("negative probes", "wrong signature"),
        ("negative probes", "stale timestamp (10 min old)"),
        ("negative probes", "identical resend (same URL and body)"),
        ("negative probes", "replayed nonce (another request)"),
        ("negative probes", "malformed JSON body"),
        ("negative probes", "G1 wrong authToken"),
        ("negative probes", "kit wrong x-sign"),
    }
    assert "differs from the first answer" in failures[("onetime G2", "newInstance retried")]
    assert "resultCode 000003" in failures[("onetime G2", "releaseInstance again (idempotent)")]
    assert "Body-Sign does not match" in failures[("onetime G1", "newInstance")]
    assert "appInfo missing" in failures[("onetime G1", "newInstance")]
    assert "resultCode 000000" in failures[("negative probes", "replayed nonce (another request)")]
    assert (
        "differs from the first answer's bytes" in failures[("negative probes", "identical resend (same URL and body)")]
    )
    assert "FAIL" in simulator.report(sim)


def test_flask_simulate_uses_the_apps_own_keys(live, runner):
    server, _ = live
    result = runner.invoke(
        simulator.simulate_command, [server.url, "--suite", "kit", "--suite", "trial", "--generation", "g1"]
    )
    assert result.exit_code == 0, result.output
    assert "kit tenantSync add" in result.output and "refreshInstance trialToFormal" in result.output


def test_seller_console_rounds_get_a_live_instance_each_time(live):
    server, _ = live
    sim = simulator.run(simulator.Simulator(server.url, KEY, KIT_KEY), ["seller-console"], "g2")
    assert sim.failed == [], simulator.report(sim)
    steps = [s.step for s in sim.steps]
    assert {"round 2 yearly/monthly upgradeInstance", "round 2 one-time releaseInstance"} <= set(steps)
    assert len(steps) == 2 * (7 + 3) and {s.scenario for s in sim.steps} == {"seller-console G2"}
    # Run again: the MOCK orders' instances are all released now, and still every round succeeds.
    again = simulator.run(simulator.Simulator(server.url, KEY, KIT_KEY), ["seller-console"], "g2")
    assert again.failed == [], simulator.report(again)


def test_change_suite_and_tolerance_probes_pass_against_isvapp(live):
    server, public = live
    sim = simulator.run(
        simulator.Simulator(server.url, KEY, KIT_KEY, public.read_bytes()), ["change"], "g2", with_tolerance=True
    )
    assert sim.failed == [], simulator.report(sim)
    steps = {(s.scenario, s.step) for s in sim.steps}
    assert {
        ("change G2", "changeInstanceCheck"),
        ("change G2", "orderNotify"),
        ("change G2", "refreshInstance RENEWAL_CHANGE"),
    } <= steps
    probes = [s.step for s in sim.steps if s.scenario == "tolerance probes"]
    assert len(probes) >= 17 and "body sent with no Content-Type" in probes


class StrictServer:
    """Answers well, but only a body sent as application/json, and never at a path ending in '/'."""

    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.method == "POST" and (request.mimetype != "application/json" or request.path.endswith("/")):
            body = envelope("000002", "Content-Type must be application/json")
        else:
            params = json.loads(request.get_data()) if request.method == "POST" else dict(request.args)
            ids = str(params.get("instanceId") or "").split(",")
            body = envelope(
                instanceId=params.get("businessId"),
                info=[{"instanceId": i, "appInfo": {"frontEndUrl": "https://x"}} for i in ids],
            )
        headers = {"Content-Type": "application/json", "Body-Sign": body_sign(KEY, body)}
        return Response(body, 200, headers=headers)(environ, start_response)


@pytest.mark.live
def test_tolerance_probes_catch_a_server_that_refuses_odd_requests():
    with Running(StrictServer()) as running:
        sim = simulator.run(simulator.Simulator(running.url, KEY), [], "g2", with_tolerance=True)
    failures = {s.step: s.reason for s in sim.failed}
    assert set(failures) == {
        "body sent with Content-Type text/plain",
        "body sent with no Content-Type",
        "path with a trailing slash (/produce/)",
    }, simulator.report(sim)
    assert all("resultCode 000002" in reason for reason in failures.values())
    assert not any(s.ok is False for s in sim.steps if "refreshInstance" in s.step)


def test_cli_lists_the_new_suite_and_option():
    from click.testing import CliRunner

    result = CliRunner().invoke(simulator.main, ["--help"])
    assert "--tolerance" in result.output and "seller-console" in result.output


def test_flask_simulate_takes_tolerance_and_the_seller_console_suite(live, runner):
    server, _ = live
    result = runner.invoke(simulator.simulate_command, [server.url, "--suite", "seller-console", "--tolerance"])
    assert result.exit_code == 0, result.output
    assert "round 2 one-time releaseInstance" in result.output and "tolerance probes" in result.output
