"""The deployment files under deploy/ and compose.yaml parse, and do what docs/deploy.md says.

- the systemd units pass ``systemd-analyze verify`` (run on copies whose /srv/isvapp points at a
  folder with stand-in executables: verify checks that ExecStart's programs exist), every service
  runs as ``isvapp`` with the hardening set, and the timer starts the backup;
- the nginx site passes ``nginx -t`` with a throwaway certificate, then serves for real on loopback
  in front of a real gunicorn: http redirects to https, HSTS and no version banner on every
  answer, TLS 1.1 refused;
- deploy/backup.sh writes a backup and removes old ones;
- compose.yaml has its three services, the shared instance volume, restart policies and health
  checks, and ``docker-compose config`` accepts it where that tool is installed;
- scripts/venv.sh refuses a Python older than 3.11 before pip, saying what to do.
"""

import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest
import requests
import yaml

from .live import ROOT, LiveServer, free_port, stop_process

pytestmark = pytest.mark.live  # every test here starts a server, a process or a browser

DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").iterdir())
SERVICES = [unit for unit in UNITS if unit.suffix == ".service"]
HARDENING = [
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "PrivateTmp=yes",
    "ProtectHome=yes",
    "PrivateDevices=yes",
    "CapabilityBoundingSet=",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    "SystemCallFilter=@system-service",
    "UMask=0077",
]


def tool(name):
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None)
    if not path:
        pytest.skip(f"{name} is not installed (scripts/test.sh installs it from Debian's packages)")
    return path


# --- systemd -------------------------------------------------------------------------------------


def unit_lines(path):
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def verify_units(tmp_path, units):
    """``systemd-analyze verify`` on copies of ``units`` with /srv/isvapp under tmp_path; its output."""
    root = tmp_path / "root"
    for program in (".venv/bin/isvapp", ".venv/bin/gunicorn", "deploy/backup.sh"):
        stand_in = root / "srv/isvapp" / program
        stand_in.parent.mkdir(parents=True, exist_ok=True)
        stand_in.write_text("#!/bin/sh\n")
        stand_in.chmod(0o755)
    folder = tmp_path / "units"
    folder.mkdir(exist_ok=True)
    for name, text in units.items():
        (folder / name).write_text(text.replace("/srv/isvapp", f"{root}/srv/isvapp"))
    result = subprocess.run(
        [tool("systemd-analyze"), "verify", *sorted(str(folder / name) for name in units)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, (result.stdout + result.stderr).strip()


def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path):
    units = {unit.name: unit.read_text() for unit in UNITS}
    assert set(units) == {"isvapp.service", "isvapp-worker.service", "isvapp-backup.service", "isvapp-backup.timer"}
    code, output = verify_units(tmp_path, units)
    assert code == 0 and output == "", output
    # ...and verify does report a mistake (so the empty output above means something).
    units["isvapp-worker.service"] = units["isvapp-worker.service"].replace("ProtectSystem=", "ProtectSytem=")
    code, output = verify_units(tmp_path, units)
    assert "Unknown key" in output and "ProtectSytem" in output, output


@pytest.mark.parametrize("unit", SERVICES, ids=lambda p: p.name)
def test_every_service_runs_as_isvapp_with_the_hardening_set(unit):
    lines = unit_lines(unit)
    assert "User=isvapp" in lines and "Group=isvapp" in lines
    missing = [directive for directive in HARDENING if directive not in lines]
    assert not missing, f"{unit.name} lacks {missing}"
    writable = next(line for line in lines if line.startswith("ReadWritePaths="))
    assert "/srv/isvapp/instance" in writable.split("=", 1)[1].split()


def test_the_server_and_worker_migrate_before_they_start_and_restart_always():
    for name, program in (
        ("isvapp.service", "gunicorn -c gunicorn.conf.py wsgi:app"),
        ("isvapp-worker.service", "isvapp worker"),
    ):
        lines = unit_lines(DEPLOY / "systemd" / name)
        assert "ExecStartPre=/srv/isvapp/.venv/bin/isvapp init-db" in lines
        assert f"ExecStart=/srv/isvapp/.venv/bin/{program}" in lines
        assert "Restart=always" in lines


def test_the_timer_runs_the_backup_daily():
    timer = unit_lines(DEPLOY / "systemd" / "isvapp-backup.timer")
    assert "Persistent=true" in timer and any(line.startswith("OnCalendar=") for line in timer)
    service = unit_lines(DEPLOY / "systemd" / "isvapp-backup.service")
    assert "Type=oneshot" in service
    assert "ExecStart=/srv/isvapp/deploy/backup.sh /var/backups/isvapp 14" in service
    assert "/var/backups/isvapp" in next(line for line in service if line.startswith("ReadWritePaths="))


# --- the backup script -----------------------------------------------------------------------------


def test_the_backup_script_writes_a_backup_and_removes_old_ones(tmp_path):
    instance, backups = tmp_path / "instance", tmp_path / "backups"
    backups.mkdir()
    env = {
        **os.environ,
        "ISVAPP_INSTANCE_PATH": str(instance),
        "ISVAPP_SECRET_KEY": "x" * 8 + "backup-test-0123456789abcdef",
    }
    env.pop("ISVAPP_SQLALCHEMY_DATABASE_URI", None)  # `backup` copies the SQLite database
    subprocess.run([str(ROOT / ".venv/bin/isvapp"), "init-db"], env=env, check=True, capture_output=True, timeout=60)
    old, recent = backups / "isvapp-20200101T000000Z", backups / "isvapp-20991231T000000Z"
    for path in (old, recent):
        path.write_text("a backup")
    os.utime(old, (time.time() - 20 * 86400,) * 2)
    unrelated = backups / "notes.txt"
    unrelated.write_text("kept")
    os.utime(unrelated, (time.time() - 20 * 86400,) * 2)

    result = subprocess.run(
        [str(DEPLOY / "backup.sh"), str(backups), "14"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    made = sorted(p.name for p in backups.iterdir() if p.name.startswith("isvapp-2") and p not in (old, recent))
    assert len(made) == 1 and f"wrote {backups / made[0]}" in result.stdout
    assert not old.exists() and recent.exists() and unrelated.exists()


def test_the_backup_script_says_what_to_do_without_its_folder(tmp_path):
    result = subprocess.run(
        [str(DEPLOY / "backup.sh"), str(tmp_path / "missing")], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "is not a folder" in result.stderr and "install -d -o" in result.stderr
    assert not (tmp_path / "missing").exists()


# --- nginx -----------------------------------------------------------------------------------------


def throwaway_certificate(folder):
    """A self-signed certificate for isv.example.com, made by openssl: (certificate, key)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            tool("openssl"),
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=isv.example.com",
            "-addext",
            "subjectAltName=DNS:isv.example.com",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def site_for(folder, replacements):
    """deploy/nginx/isvapp.conf with ``replacements`` made (each must occur), in ``folder``,
    included by a minimal nginx.conf of its own (pid, logs in ``folder``)."""
    site = (DEPLOY / "nginx" / "isvapp.conf").read_text()
    for old, new in replacements.items():
        assert old in site, f"deploy/nginx/isvapp.conf no longer has {old!r}"
        site = site.replace(old, new)
    (folder / "site.conf").write_text(site)
    conf = folder / "nginx.conf"
    conf.write_text(
        f"pid {folder}/nginx.pid;\nerror_log {folder}/error.log;\nevents {{}}\n"
        f"http {{\n    access_log {folder}/access.log;\n    include {folder}/site.conf;\n}}\n"
    )
    return conf


def nginx(conf, *args):
    return subprocess.run(
        [tool("nginx"), "-p", str(conf.parent), "-c", str(conf), "-e", str(conf.parent / "error.log"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def certificate_replacements(folder):
    cert, key = throwaway_certificate(folder)
    return {
        "/etc/ssl/isv.example.com.fullchain.pem": str(cert),
        "/etc/ssl/isv.example.com.key": str(key),
        "/var/log/nginx/": f"{folder}/",
    }


def test_the_nginx_site_passes_nginx_t(tmp_path):
    conf = site_for(tmp_path, certificate_replacements(tmp_path))
    result = nginx(conf, "-t")
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_the_nginx_site_fails_nginx_t_without_its_certificate(tmp_path):
    """The check above can fail: the site as shipped names a certificate this host does not have."""
    conf = site_for(tmp_path, {"/var/log/nginx/": f"{tmp_path}/"})
    result = nginx(conf, "-t")
    assert result.returncode != 0 and "isv.example.com" in result.stderr


def wait_for_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port} after {timeout} s")


@pytest.fixture
def proxied(tmp_path):
    """The site served by nginx on two loopback ports, in front of a real gunicorn: (http, https)."""
    tool("nginx")
    server = LiveServer(tmp_path / "instance")
    http_port, https_port = free_port(), free_port()
    replacements = certificate_replacements(tmp_path)
    replacements.update(
        {
            "listen 80;": f"listen 127.0.0.1:{http_port};",
            "listen [::]:80;": "",
            "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
            "listen [::]:443 ssl http2;": "",
            "proxy_pass http://127.0.0.1:8000;": f"proxy_pass http://127.0.0.1:{server.port};",
        }
    )
    conf = site_for(tmp_path, replacements)
    with server:
        proc = subprocess.Popen(
            [
                tool("nginx"),
                "-p",
                str(tmp_path),
                "-c",
                str(conf),
                "-e",
                str(tmp_path / "error.log"),
                "-g",
                "daemon off;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(http_port)
            wait_for_port(https_port)
            yield f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{https_port}", https_port
        finally:
            stop_process(proc)


HOST = {"Host": "isv.example.com"}


def test_http_is_redirected_to_https_with_the_path_and_query(proxied):
    http, _, _ = proxied
    answer = requests.get(f"{http}/produce?a=1&b=2", headers=HOST, allow_redirects=False, timeout=10)
    assert answer.status_code == 301
    assert answer.headers["Location"] == "https://isv.example.com/produce?a=1&b=2"
    assert answer.headers["Server"] == "nginx"  # server_tokens off: no version


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # the throwaway certificate
@pytest.mark.parametrize("path, status", [("/healthz", 200), ("/no-such-page", 404)])
def test_https_answers_with_hsts_and_no_version_banner(proxied, path, status):
    _, https, _ = proxied
    answer = requests.get(https + path, headers=HOST, verify=False, timeout=10)
    assert answer.status_code == status
    assert answer.headers["Strict-Transport-Security"] == "max-age=63072000"
    assert answer.headers["Server"] == "nginx"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"  # once, not "nosniff, nosniff"
    if status == 200:
        assert answer.json()["status"] == "ok"  # through to gunicorn


def handshake(port, version):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # so this client offers the old versions at all
    context.minimum_version = context.maximum_version = version
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="isv.example.com") as tls:
            return tls.version()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")  # offered on purpose, to be refused
def test_only_tls_1_2_and_1_3_are_accepted(proxied):
    _, _, port = proxied
    assert handshake(port, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert handshake(port, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        with pytest.raises(ssl.SSLError) as refused:
            handshake(port, old)
        assert "PROTOCOL_VERSION" in str(refused.value).upper() or "UNSUPPORTED PROTOCOL" in str(refused.value).upper()


# --- compose ---------------------------------------------------------------------------------------


def compose():
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_has_web_worker_and_postgres_sharing_the_instance_volume():
    services = compose()["services"]
    assert set(services) == {"web", "worker", "postgres"}
    assert services["web"]["command"] == ["serve"] and services["worker"]["command"] == ["worker"]
    for name in ("web", "worker"):
        assert "instance:/srv/isvapp/instance" in services[name]["volumes"]
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert "postgres" in services[name]["environment"]["ISVAPP_SQLALCHEMY_DATABASE_URI"]
    assert services["worker"]["depends_on"]["web"] == {"condition": "service_healthy"}
    assert all(service["restart"] == "unless-stopped" for service in services.values())
    assert services["web"]["healthcheck"]["test"] == ["CMD", "/opt/isvapp/entrypoint.sh", "healthcheck"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["web"]["ports"] == ["127.0.0.1:8000:8000"]  # only nginx on the host reaches it
    assert set(compose()["volumes"]) == {"instance", "pgdata"}


def compose_config(tmp_path, env_text):
    binary = shutil.which("docker-compose")
    if not binary:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose); the structure is checked above")
    for name in ("compose.yaml", "Containerfile"):
        shutil.copy(ROOT / name, tmp_path / name)
    if env_text is not None:
        (tmp_path / ".env").write_text(env_text)
    return subprocess.run([binary, "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_docker_compose_config_accepts_compose_yaml(tmp_path):
    result = compose_config(tmp_path, "POSTGRES_PASSWORD=0123abcd\nISVAPP_KOO_ACCESS_KEY=seller-console-key\n")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    uri = "postgresql+psycopg://isvapp:0123abcd@postgres:5432/isvapp"
    assert resolved["web"]["environment"]["ISVAPP_SQLALCHEMY_DATABASE_URI"] == uri
    assert resolved["worker"]["environment"]["ISVAPP_KOO_ACCESS_KEY"] == "seller-console-key"


def test_compose_says_which_setting_is_missing(tmp_path):
    result = compose_config(tmp_path, "ISVAPP_KOO_ACCESS_KEY=k\n")
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in result.stderr


# --- the Python version --------------------------------------------------------------------------


def fake_python(folder, version):
    """A ``python3`` that reports ``version`` and records any other call (none must come)."""
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / "python3"
    program.write_text(
        f'#!/bin/sh\nif [ "$1" = --version ]; then echo "Python {version}"; exit 0; fi\n'
        f'echo "$@" >> "{folder}/calls"\nexit 0\n'
    )
    program.chmod(0o755)
    return program


def run_venv_sh(cwd, path_first, **env):
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "venv.sh")],
        cwd=cwd,
        env={**os.environ, "PATH": f"{path_first}:{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_venv_sh_refuses_python_3_10_and_says_what_to_do(tmp_path):
    bin_ = tmp_path / "bin"
    fake_python(bin_, "3.10.12")
    work = tmp_path / "work"  # not the repository: its .venv is never touched
    work.mkdir()
    result = run_venv_sh(work, bin_)
    assert result.returncode == 1
    message = result.stderr
    assert "isvapp needs Python 3.11 or newer: python3 here is 3.10.12." in message
    assert "Debian 12 (bookworm) ships Python 3.11 and Ubuntu 24.04 ships 3.12" in message
    assert "Ubuntu 22.04 ships 3.10" in message and "container image" in message
    assert "ISVAPP_PYTHON=python3.12 ./scripts/run.sh" in message
    assert not (bin_ / "calls").exists(), "venv.sh ran python3 past the version check"
    assert list(work.iterdir()) == []


def test_venv_sh_checks_the_python_named_by_isvapp_python(tmp_path):
    fake_python(tmp_path / "bin", "3.9.2")
    result = run_venv_sh(tmp_path, tmp_path / "bin", ISVAPP_PYTHON=str(tmp_path / "bin" / "python3"))
    assert result.returncode == 1 and "python3 here is 3.9.2" in result.stderr


def test_venv_sh_checks_an_existing_venvs_python(tmp_path):
    fake_python(tmp_path / ".venv" / "bin", "3.10.4").rename(tmp_path / ".venv" / "bin" / "python")
    result = run_venv_sh(tmp_path, "/nonexistent")
    assert result.returncode == 1
    assert "the Python of .venv/ is 3.10.4; remove .venv/ once a newer one is installed" in result.stderr


# --- the Containerfile -----------------------------------------------------------------------------

# Instructions both docker (Dockerfile reference) and podman (buildah) read the same way.
PORTABLE = {"FROM", "RUN", "COPY", "ENV", "ARG", "LABEL", "VOLUME", "WORKDIR", "USER", "EXPOSE"}
PORTABLE |= {"HEALTHCHECK", "ENTRYPOINT", "CMD"}


def instructions(text):
    """(instruction, rest) for each instruction of a Containerfile, continuation lines joined."""
    joined = text.replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def test_the_containerfile_uses_portable_instructions_and_the_real_base():
    steps = instructions((ROOT / "Containerfile").read_text())
    assert {name for name, _ in steps} <= PORTABLE, sorted({name for name, _ in steps} - PORTABLE)
    assert [rest for name, rest in steps if name == "FROM"] == ["debian:bookworm-slim AS build", "debian:bookworm-slim"]
    assert ("USER", "10001:10001") in steps and ("VOLUME", "/srv/isvapp/instance") in steps
    run = " ".join(rest for name, rest in steps if name == "RUN")
    assert "ca-certificates" in run and '"/src[postgres]"' in run and "pip.conf" not in run
    assert not [rest for name, rest in steps if name in ("ENV", "ARG") and "SECRET" in rest.upper()]


def test_the_build_context_leaves_local_state_out():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "instance", "artifacts"} <= ignored
