"""The container image, built and run as a merchant would: web and worker from one image.

From a clean clone of this repository's HEAD, scripts/podman.sh builds the Containerfile with
podman (on these machines: a locally made debian:bookworm-slim base, runc, host networking; see
that script). Then, on one instance volume, with only what a merchant sets (ISVAPP_SECRET_KEY,
ISVAPP_KOO_ACCESS_KEY, the open API's address and AK/SK):

1. the web container answers /healthz (the time from ``podman run`` is recorded), and its
   HEALTHCHECK passes;
2. the worker container runs beside it, from the same image;
3. no process in either runs as root;
4. the simulator (isvapp-sim, on the host, with the Kit public key the container made) plays every
   suite, both generations, probes and tolerance, against the container: all pass; the License
   relay suite reaches ``flask fake-market`` on the host through the container's settings;
5. the worker settles with no dead job, and no container log holds a traceback.

The image's size, the build time and the time to serve are written to artifacts/image.txt.
Marked ``image``: it takes minutes, so scripts/test.sh runs it in the SQLite run only.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest
import requests
from isvapp.standins.simulator import SUITES

from .helpers import KEY
from .live import ROOT, free_port, stop_process

pytestmark = [pytest.mark.image, pytest.mark.live]

PODMAN = ROOT / "scripts" / "podman.sh"
BASE = "docker.io/library/debian:bookworm-slim"
SECRET_KEY = "image-test-secret-0123456789abcdefghijklmnop"
AK, SK = "image-ak", "image-sk"
SERVE_TIMEOUT_S = 180  # generous: a loaded 2-core machine
SETTLE_S = 120


def podman(*args, timeout=120, check=True):
    result = subprocess.run([str(PODMAN), *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def isvapp_in(container, *args):
    return podman("exec", container, "isvapp", *args, timeout=120).stdout


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    missing = [
        name for name in ("podman", "debootstrap") if not shutil.which(name) and not os.path.exists(f"/usr/sbin/{name}")
    ]
    if missing or not os.path.exists("/usr/sbin/runc"):
        pytest.skip(
            f"podman, runc and debootstrap are needed (missing: {missing or ['runc']}); scripts/test.sh installs them"
        )
    source = tmp_path_factory.mktemp("clone") / "isvapp"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(source)], check=True, timeout=120)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    cloned = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert cloned.stdout.strip() == head, "the clone is not this worktree's HEAD"

    figures = {"commit": head[:12]}
    base_present = subprocess.run(["podman", "image", "exists", BASE], timeout=60).returncode == 0
    started = time.monotonic()
    podman("image", "exists", BASE, timeout=900)  # scripts/podman.sh makes the base when it is missing
    figures["base image"] = "present" if base_present else f"made in {time.monotonic() - started:.0f} s"
    # One tag, moved by each run; the image it named before is removed after the build (with the
    # layers only it used), so runs do not pile up images, and the unchanged layers stay cached.
    tag = "localhost/isvapp:test"
    before = podman("image", "inspect", "--format", "{{.Id}}", tag, check=False).stdout.strip()
    started = time.monotonic()
    podman("build", "--network=host", "--format", "docker", "-t", tag, str(source), timeout=1800)
    figures["build"] = f"{time.monotonic() - started:.0f} s"
    inspect = json.loads(podman("image", "inspect", tag).stdout)[0]
    if before and before != inspect["Id"]:
        podman("rmi", before, check=False)
    stages = podman("images", "--filter", "label=isvapp.build-stage=true", "--format", "{{.ID}}").stdout.split()
    for old in stages[1:]:  # newest first: keep the build stage just made, for the next run's cache
        podman("rmi", old, check=False)
    figures["size"] = f"{inspect['Size'] / 1e6:.0f} MB"
    yield dict(tag=tag, config=inspect["Config"], healthcheck=inspect.get("Healthcheck"), figures=figures)


@pytest.fixture(scope="module")
def running(image, tmp_path_factory):
    folder = tmp_path_factory.mktemp("image-run")
    name = f"isvapp-test-{uuid.uuid4().hex[:8]}"
    volume, web, worker = f"{name}-instance", f"{name}-web", f"{name}-worker"
    port, market_port = free_port(), free_port()
    merchant = {
        "ISVAPP_SECRET_KEY": SECRET_KEY,
        "ISVAPP_KOO_ACCESS_KEY": KEY,
        "ISVAPP_KOO_AK": AK,
        "ISVAPP_KOO_SK": SK,
        "ISVAPP_KOO_API_BASE_URL": f"http://127.0.0.1:{market_port}",
    }
    market_log = open(folder / "fake-market.log", "w")
    market = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "isvapp", "fake-market", "--port", str(market_port)],
        cwd=ROOT,
        env={**os.environ, **merchant, "ISVAPP_INSTANCE_PATH": str(folder / "market-instance")},
        stdout=market_log,
        stderr=subprocess.STDOUT,
    )
    env_args = [arg for key, value in merchant.items() for arg in ("-e", f"{key}={value}")]
    # Host networking: the simulator's fake IdP (Kit login) and the fake market listen on the host's
    # loopback, where the server must reach them; the server binds loopback only.
    common = ["--network=host", "-v", f"{volume}:/srv/isvapp/instance", *env_args]
    try:
        podman("volume", "create", volume)
        started = time.monotonic()
        podman("run", "-d", "--name", web, "-e", f"ISVAPP_BIND=127.0.0.1:{port}", *common, image["tag"])
        url = f"http://127.0.0.1:{port}"
        deadline = started + SERVE_TIMEOUT_S
        while True:
            try:
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            state = podman("inspect", "--format", "{{.State.Status}}", web).stdout.strip()
            assert state == "running", f"web container {state}:\n{podman('logs', web).stderr[-3000:]}"
            assert time.monotonic() < deadline, f"no /healthz after {SERVE_TIMEOUT_S} s"
            time.sleep(0.2)
        image["figures"]["podman run to /healthz"] = f"{time.monotonic() - started:.1f} s"
        podman("run", "-d", "--name", worker, *common, image["tag"], "worker")
        yield dict(url=url, web=web, worker=worker, folder=folder, figures=image["figures"])
    finally:
        for container in (worker, web):
            logs = podman("logs", container, check=False)
            (folder / f"{container}.log").write_text(logs.stdout + logs.stderr)
            podman("rm", "-f", "-t", "10", container, check=False)
        podman("volume", "rm", "-f", volume, check=False)
        stop_process(market)
        market_log.close()
        artifacts = ROOT / "artifacts"
        artifacts.mkdir(exist_ok=True)
        (artifacts / "image.txt").write_text("".join(f"{k}: {v}\n" for k, v in image["figures"].items()))
        print("image figures: " + ", ".join(f"{k} {v}" for k, v in image["figures"].items()))


def test_the_image_serves_as_configured(image):
    config = image["config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/opt/isvapp/entrypoint.sh"] and config["Cmd"] == ["serve"]
    assert "/srv/isvapp/instance" in config["Volumes"]
    assert "ISVAPP_INSTANCE_PATH=/srv/isvapp/instance" in config["Env"]
    assert "ISVAPP_BIND=0.0.0.0:8000" in config["Env"]
    assert image["healthcheck"]["Test"] == ["CMD", "/opt/isvapp/entrypoint.sh", "healthcheck"]
    assert not [e for e in config["Env"] if e.startswith(("ISVAPP_SECRET_KEY", "ISVAPP_KOO_ACCESS_KEY"))]


def test_the_healthchecks_pass(running):
    for container in (running["web"], running["worker"]):
        result = podman("healthcheck", "run", container, check=False)
        assert result.returncode == 0, f"{container}: {result.stdout} {result.stderr[-2000:]}"


def test_no_process_runs_as_root(running):
    for container in (running["web"], running["worker"]):
        assert podman("exec", container, "id", "-u").stdout.strip() == "10001"
        listing = podman("exec", container, "sh", "-c", "grep -H '^Uid:' /proc/[0-9]*/status").stdout
        uids = {line.split(":", 1)[0]: line.split()[1:] for line in listing.splitlines()}
        assert "/proc/1/status" in uids, listing
        rooted = {pid: ids for pid, ids in uids.items() if "0" in ids}
        assert not rooted, f"{container}: processes with uid 0: {rooted}"


def test_the_simulator_passes_every_suite_against_the_container(running):
    public_key = running["folder"] / "kit_public.pem"
    public_key.write_text(isvapp_in(running["web"], "kit-keygen"))
    started = time.monotonic()
    sim = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "isvapp-sim"),
            running["url"],
            "--key",
            KEY,
            "--kit-public-key",
            str(public_key),
            *[a for s in SUITES for a in ("--suite", s)],
            "--generation",
            "both",
            "--probes",
            "--tolerance",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    running["figures"]["simulate"] = f"{time.monotonic() - started:.0f} s"
    assert sim.stdout.lstrip().startswith("{"), f"exit {sim.returncode}\n{sim.stdout[-3000:]}\n{sim.stderr[-3000:]}"
    report = json.loads(sim.stdout)
    failed = [s for s in report["steps"] if not s["ok"]]
    assert not failed, "\n".join(
        f"{s['scenario']} / {s['step']}: expected {s['expected']} got {s['got']}: {s['reason']}" for s in failed
    )
    assert report["ok"] and sim.returncode == 0
    scenarios = {s["scenario"].split(" ")[0] for s in report["steps"]}
    assert set(SUITES) <= scenarios, sorted(set(SUITES) - scenarios)
    running["figures"]["simulator steps passed"] = str(len(report["steps"]))


def test_the_worker_settles_with_no_dead_job_and_no_traceback(running):
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        busy = [
            line
            for state in ("running", "queued")
            for line in isvapp_in(running["web"], "jobs", "list", "--state", state).splitlines()
        ]
        if not busy:
            break
        time.sleep(3)
    assert isvapp_in(running["web"], "jobs", "list", "--state", "dead").strip() == ""
    assert isvapp_in(running["web"], "jobs", "list", "--state", "done").strip(), "the worker ran no job"
    for container in (running["web"], running["worker"]):
        logs = podman("logs", container)
        log = logs.stdout + logs.stderr
        assert "Traceback" not in log, f"{container}:\n{log[-4000:]}"


def test_with_no_secret_key_the_first_start_writes_one_into_the_volume_for_both(image):
    """What a merchant gets from ``podman run IMAGE`` with no SECRET_KEY: one written into the
    instance volume (mode 600), said in the log, and read by the worker on the same volume."""
    name = f"isvapp-nokey-{uuid.uuid4().hex[:8]}"
    volume, web, worker, port = f"{name}-instance", f"{name}-web", f"{name}-worker", free_port()
    common = ["--network=host", "-v", f"{volume}:/srv/isvapp/instance", "-e", f"ISVAPP_KOO_ACCESS_KEY={KEY}"]
    try:
        podman("volume", "create", volume)
        podman("run", "-d", "--name", web, "-e", f"ISVAPP_BIND=127.0.0.1:{port}", *common, image["tag"])
        podman("run", "-d", "--name", worker, *common, image["tag"], "worker")
        deadline = time.monotonic() + SERVE_TIMEOUT_S
        while "worker" not in (log := podman("logs", worker).stderr) or "started" not in log:
            assert podman("inspect", "--format", "{{.State.Status}}", worker).stdout.strip() == "running", log
            assert time.monotonic() < deadline, f"the worker did not start:\n{log[-3000:]}"
            time.sleep(1)
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        said = podman("logs", web).stderr
        assert "no SECRET_KEY was set, so a new one was written to /srv/isvapp/instance/config.py" in said
        assert "Development KOO_ACCESS_KEY" not in said  # the development key is not logged
        mode = podman("exec", web, "stat", "-c", "%a %u", "/srv/isvapp/instance/config.py").stdout.split()
        assert mode == ["600", "10001"]
        secret = podman(
            "exec", web, "python3", "-c", "exec(open('/srv/isvapp/instance/config.py').read()); print(len(SECRET_KEY))"
        )
        assert int(secret.stdout) >= 32
    finally:
        for container in (worker, web):
            podman("rm", "-f", "-t", "5", container, check=False)
        podman("volume", "rm", "-f", volume, check=False)
