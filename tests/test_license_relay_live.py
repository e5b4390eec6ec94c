"""License codes end to end on loopback: a real gunicorn, a real `flask worker`, the fake marketplace
reached only through the backup domain (the main one is down), and the installed software played
by a separate process running docs/license-relay.md's Python client as printed.
"""

import json
import re
import shutil
import subprocess
import sys

import pytest
import requests
from isvapp.koo.signing import g2_signed_request
from isvapp.standins.fakemarket import create_fake_market
from isvapp.standins.serving import Running
from isvapp.storage.models import Alert, License, LicenseCode, UploadState
from sqlalchemy import select

from .helpers import KEY, async_request, lic2_order
from .live import ROOT, LiveServer, free_port, stop_process, wait_for
from .tiers import live_fixture

pytestmark = pytest.mark.live  # every test here starts a server, a process or a browser

AK, SK = "relay-ak", "relay-sk"
DOC = ROOT / "docs" / "license-relay.md"

DRIVER = """
import json, sys
import relayclient
step = sys.argv[1]
try:
    if step == "activate":
        answer = relayclient.activate("PLXXXXXX")
        print(json.dumps({"ok": True, "status": answer["status"], "token_len": len(answer["installationToken"])}))
    else:
        valid, answer = relayclient.licensed("PLXXXXXX", "myaccount1")
        print(json.dumps({"ok": True, "valid": valid, "source": answer["source"]}))
except RuntimeError as error:
    print(json.dumps({"ok": False, "error": str(error)}))
"""


def python_client():
    [block] = [b for tag, b in re.findall(r"^```(\w*)\n(.*?)^```$", DOC.read_text(), re.S | re.M) if tag == "python"]
    return block


@live_fixture
def stack(tmp_path):
    market_api = Running(create_fake_market(AK, SK, KEY)).__enter__()
    env = {
        "ISVAPP_KOO_ACCESS_KEY": KEY,
        "ISVAPP_KOO_AK": AK,
        "ISVAPP_KOO_SK": SK,
        "ISVAPP_KOO_API_BASE_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens: the main domain is down
        "ISVAPP_KOO_API_BACKUP_URL": market_api.url,
        "ISVAPP_KOO_API_TIMEOUT_S": "1",
        "ISVAPP_JOB_RETRY_BASE_S": "0",
        "ISVAPP_JOB_MAX_ATTEMPTS": "3",
    }
    server = LiveServer(tmp_path, workers=2, env=env).start()
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "isvapp", "worker", "--poll", "0.2"],
        cwd=ROOT,
        env=server.env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "worker.err", "w"),
    )
    engine = server.engine()
    try:
        yield server, market_api, engine
    finally:
        engine.dispose()
        stop_process(worker)
        server.stop()
        market_api.__exit__(None, None, None)
    for log in (tmp_path / "worker.err", tmp_path / "gunicorn.log"):
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def send(server, body):
    raw, query = g2_signed_request(KEY, body)
    response = requests.post(
        server.url + "/license", params=query, data=raw, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 200 and response.json()["resultCode"] == "000000", response.text
    return response.json()


def rows(engine, *columns, where=()):
    with engine.connect() as connection:
        return connection.execute(select(*columns).where(*where)).all()


def software(tmp_path, server, step):
    """The installed software: a process of its own, the docs' client and nothing of isvapp's."""
    (tmp_path / "relayclient.py").write_text(python_client())
    (tmp_path / "driver.py").write_text(DRIVER)
    result = subprocess.run(
        [sys.executable, "driver.py", step],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "MYAPP_RELAY": server.url + "/relay/v1",
            "MYAPP_TOKEN_FILE": str(tmp_path / "token"),
        },
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_async_licenses_are_uploaded_through_the_backup_domain_and_a_dead_one_alerts(stack):
    server, market_api, engine = stack
    send(server, lic2_order(business="live-lic"))
    issued = send(server, async_request("live-lic", event="evt-live"))
    uploads = market_api.app.extensions["fake_market"].uploads
    wait_for(lambda: uploads.get("evt-live"), "the upload")
    assert uploads["evt-live"] == [issued["license"].encode()]
    wait_for(
        lambda: rows(engine, License.upload_state, where=[License.event_id == "evt-live"]) == [(UploadState.UPLOADED,)],
        "the document marked uploaded",
    )

    market_api.app.config["FAKE_UPLOAD_FIELD"] = "license"  # the marketplace now refuses the part
    send(server, lic2_order(order="CS2310270001LIC", business="live-dead"))
    send(server, async_request("live-dead", event="evt-dead"))
    wait_for(lambda: rows(engine, Alert.subject, where=[Alert.kind == "dead_job"]), "the dead_job alert")
    [(state, error)] = rows(engine, License.upload_state, License.upload_error, where=[License.event_id == "evt-dead"])
    assert state == UploadState.FAILED and "92020002" in error
    assert "evt-dead" not in uploads


def test_the_installed_software_activates_verifies_reports_and_rides_out_an_outage(stack, tmp_path):
    server, market_api, engine = stack
    activated = software(tmp_path, server, "activate")
    assert activated == {"ok": True, "status": "NORMAL", "token_len": activated["token_len"]}
    assert activated["token_len"] > 40 and (tmp_path / "token").stat().st_mode & 0o077 == 0
    assert software(tmp_path, server, "verify") == {"ok": True, "valid": True, "source": "marketplace"}
    reported = market_api.app.extensions["fake_market"].software_usage
    wait_for(lambda: reported, "the usage report")
    assert reported == [{"usage_info": [{"license": "PLXXXXXX", "software_usage_Info": [{"id": "myaccount1"}]}]}]
    wait_for(lambda: rows(engine, LicenseCode.usage_reports) == [(1,)], "the usage counted")

    token = (tmp_path / "token").read_text()
    (tmp_path / "token").write_text(token.split(".")[0] + ".not-the-secret")
    refused = software(tmp_path, server, "verify")
    assert refused["ok"] is False and "(401)" in refused["error"] and "installation token" in refused["error"]
    (tmp_path / "token").write_text(token)

    market_api.__exit__(None, None, None)  # the marketplace goes away, both domains
    assert software(tmp_path, server, "verify") == {"ok": True, "valid": True, "source": "cache"}
    assert [q["license"] for q in market_api.app.extensions["fake_market"].queries] == ["PLXXXXXX"]
    assert token.split(".")[1] not in (tmp_path / "gunicorn.log").read_text()


JAVA_DRIVER = """
public class Driver {
    public static void main(String[] args) throws Exception {
        RelayClient client = new RelayClient(args[0]);
        String token = client.activate("PLXXXXXX");
        System.out.println("licensed " + client.licensed("PLXXXXXX", token, "java-user"));
        try {
            client.licensed("PLXXXXXX", token.split("[.]")[0] + ".wrong", "java-user");
            System.out.println("wrong secret accepted");
        } catch (IllegalStateException refused) {
            System.out.println("wrong secret refused " + refused.getMessage().contains("unauthorized"));
        }
    }
}
"""


@pytest.mark.any_database
def test_the_java_client_as_printed_activates_and_verifies(stack, tmp_path):
    if not (shutil.which("java") and shutil.which("javac")):
        pytest.skip("java/javac are not on PATH")
    server, market_api, _ = stack
    [block] = [b for tag, b in re.findall(r"^```(\w*)\n(.*?)^```$", DOC.read_text(), re.S | re.M) if tag == "java"]
    (tmp_path / "RelayClient.java").write_text(block)
    (tmp_path / "Driver.java").write_text(JAVA_DRIVER)
    compiled = subprocess.run(
        ["javac", "-d", str(tmp_path), "RelayClient.java", "Driver.java"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert compiled.returncode == 0, compiled.stderr
    ran = subprocess.run(
        ["java", "-cp", str(tmp_path), "Driver", server.url + "/relay/v1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split("\n")[:2] == ["licensed true", "wrong secret refused true"]
    wait_for(lambda: market_api.app.extensions["fake_market"].software_usage, "the Java client's usage report")


@pytest.mark.any_database
def test_the_chinese_guide_carries_the_same_code():
    chinese = (ROOT / "docs" / "license-relay.zh-CN.md").read_text()
    for tag, block in re.findall(r"^```(\w*)\n(.*?)^```$", DOC.read_text(), re.S | re.M):
        assert block in chinese, f"the {tag} block of docs/license-relay.md differs in its Chinese twin"


@pytest.fixture
def relay_server(tmp_path):
    """gunicorn and the fake marketplace, with a budget of four calls a minute per code."""
    with Running(create_fake_market(AK, SK, KEY)) as market_api:
        env = {
            "ISVAPP_KOO_ACCESS_KEY": KEY,
            "ISVAPP_KOO_AK": AK,
            "ISVAPP_KOO_SK": SK,
            "ISVAPP_KOO_API_BASE_URL": market_api.url,
            "ISVAPP_LICENSE_RELAY_PER_MINUTE": "4",
        }
        with LiveServer(tmp_path, workers=2, env=env) as server:
            yield server


def test_strangers_without_the_installation_token_do_not_spend_the_codes_budget(relay_server):
    """Issue 33, review point 6: five verify calls with the code alone (anyone who saw the code
    can make them) answered 401 and then 429, and the real installation's verify got 429 for the
    rest of the minute. The token is checked first; the address's budget still comes before both."""
    url = relay_server.url + "/relay/v1"
    activated = requests.post(url + "/activate", json={"license": "PLXXXXXX"}, timeout=10)
    assert activated.status_code == 200, activated.text
    bearer = {"Authorization": "Bearer " + activated.json()["installationToken"]}
    strangers = [requests.post(url + "/verify", json={"license": "PLXXXXXX"}, timeout=10) for _ in range(5)]
    real = requests.post(url + "/verify", json={"license": "PLXXXXXX"}, headers=bearer, timeout=10)
    assert ([r.status_code for r in strangers], real.status_code) == ([401] * 5, 200), real.text
    assert real.json()["valid"] is True
    usage = requests.post(url + "/usage", json={"license": "PLXXXXXX", "id": "acct-1"}, headers=bearer, timeout=10)
    assert usage.status_code == 202, usage.text
