"""Hardening: webhook deliveries (no redirects, https only, a total deadline) and private files
(the SQLite database and its -wal/-shm, backups, the Kit and license private keys)."""

import os
import socket
import socketserver
import stat
import threading
import time
from contextlib import contextmanager

import isvapp.settings
import pytest
from isvapp import create_app
from isvapp.background import jobs, provisioning, worker
from isvapp.extensions import db
from isvapp.storage.models import Job, JobState
from isvapp.storage.schema import init_db
from werkzeug.wrappers import Request, Response

from .helpers import KEY, KIT_KEY, Marketplace, localhost_resolving_to, new_order, other_local_address, serving

SECRET = "hook-secret"


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def loose_umask():
    """The usual 022 umask, so a file made without an explicit private mode would come out 0644."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def hook_event(kind="created"):
    return provisioning.HookEvent(
        event_id="evt-1", kind=kind, instance_id="inst-1", order_id="ord-1", created_at="2026-01-01T00:00:00Z"
    )


def webhook(url, **config):
    return provisioning.WebhookProvisioner({"WEBHOOK_URL": url, "WEBHOOK_SECRET": SECRET, **config})


class Redirecting:
    """POST /hooks answers 302 to /final; /final answers 200 to anything (a follower would "succeed")."""

    def __init__(self):
        self.seen = []

    def __call__(self, environ, start_response):
        request = Request(environ)
        request.get_data()
        self.seen.append((request.method, request.path))
        if request.path == "/hooks":
            return Response("moved", 302, headers={"Location": "/final"})(environ, start_response)
        return Response("ok", 200)(environ, start_response)


# --- webhooks: redirects ------------------------------------------------------------------------


@pytest.mark.live
def test_a_redirect_is_a_failed_delivery_and_never_followed():
    receiver = Redirecting()
    with serving(receiver) as base:
        with pytest.raises(provisioning.WebhookFailed, match="302"):
            webhook(base + "/hooks").handle(hook_event())
    assert receiver.seen == [("POST", "/hooks")]  # no GET (nor anything else) to /final


@pytest.mark.live
@pytest.mark.parametrize(
    "app_config", [{"KOO_API_BASE_URL": "http://127.0.0.1:9", "KOO_AK": "ak", "KOO_SK": "sk", "JOB_RETRY_BASE_S": 0}]
)
def test_a_redirected_hook_job_is_retried(app, market):
    receiver = Redirecting()
    with serving(receiver) as base:
        app.config.update(
            PROVISIONER="isvapp.provisioning:WebhookProvisioner", WEBHOOK_URL=base + "/hooks", WEBHOOK_SECRET=SECRET
        )
        isvapp.settings.init_app(app)  # read once per app: read them again
        market.g2(new_order(business="inst-redirect"))
        with app.app_context():
            for _ in range(2):  # the "created" hook and the order query (refused at once)
                worker.run_one("w1")
    [job] = market.rows(Job, Job.kind == "provision")
    assert (job.state, job.attempts) == (JobState.QUEUED, 1)
    assert "HTTP 302" in job.last_error and "redirects are not followed" in job.last_error
    assert receiver.seen == [("POST", "/hooks")]


# --- webhooks: https only --------------------------------------------------------------------------


@pytest.mark.live
def test_a_plain_http_webhook_whose_localhost_resolves_elsewhere_is_refused_before_sending(monkeypatch):
    """WEBHOOK_URL's http://localhost passes check_webhook_url, but the name may resolve to another
    address (a hosts file gone wrong): the buyer's first password would cross the network in the
    clear. The address the connection reached is checked (outbound.exchange), and nothing is sent."""
    address = other_local_address()
    if address is None:
        pytest.skip("this host has no address but loopback")
    receiver = Redirecting()  # /final answers 200 to anything
    with serving(receiver, host=address) as base, localhost_resolving_to(monkeypatch, address):
        with pytest.raises(provisioning.WebhookFailed, match="localhost is not this host"):
            webhook(base.replace(address, "localhost") + "/final").handle(hook_event())
    assert receiver.seen == []


def test_plain_http_to_another_host_is_refused_before_connecting(monkeypatch):
    attempts = []

    def no_network(*args, **kwargs):
        attempts.append(args)
        raise AssertionError("no connection may be attempted")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(jobs.Permanent) as refused:
        webhook("http://example.invalid/hook").handle(hook_event())
    assert "WEBHOOK_URL" in str(refused.value) and "https" in str(refused.value)
    assert attempts == []


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hooks",
        "http://127.0.0.1:8000/h",
        "http://127.9.8.7/h",
        "http://[::1]:8080/h",
        "http://localhost/h",
        "HTTP://LOCALHOST:5000/h",
    ],
)
def test_webhook_urls_allowed(url):
    assert provisioning.check_webhook_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://example.invalid/hook",
        "http://10.0.0.1/h",
        "http://127.0.0.1.nip.io/h",
        "http://localhost.example.com/h",
        "file:///etc/passwd",
        "ftp://127.0.0.1/h",
        "https:///nohost",
        "127.0.0.1/h",
    ],
)
def test_webhook_urls_refused(url):
    with pytest.raises(jobs.Permanent, match="WEBHOOK_URL"):
        provisioning.check_webhook_url(url)


# --- webhooks: a total deadline --------------------------------------------------------------------


class Trickler(socketserver.ThreadingTCPServer):
    """Answers every request one byte every 0.5 s for 30 s: in the body, or already in the headers."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, in_headers):
        self.in_headers, self.stopping = in_headers, threading.Event()
        super().__init__(("127.0.0.1", 0), TrickleHandler)


class TrickleHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(5)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            received += chunk
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        if self.server.in_headers:
            head, trickle = b"HTTP/1.1 200 OK\r\n", b"X-Slow: " + b"a" * 60
        else:
            head, trickle = head + b"Content-Length: 60\r\n\r\n", b"b" * 60
        try:
            self.request.sendall(head)
            for byte in trickle:  # 60 bytes x 0.5 s = 30 s
                if self.server.stopping.wait(0.5):
                    return
                self.request.sendall(bytes([byte]))
        except OSError:
            return  # the client hung up: what it should do


@contextmanager
def trickling(in_headers):
    server = Trickler(in_headers)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()


@pytest.mark.live
@pytest.mark.parametrize("in_headers", [False, True], ids=["body", "headers"])
def test_a_trickling_receiver_cannot_hold_the_worker_past_the_deadline(in_headers):
    with trickling(in_headers) as url:
        started = time.monotonic()
        with pytest.raises(Exception) as failed:
            webhook(url, WEBHOOK_TIMEOUT_S=2).handle(hook_event())
        elapsed = time.monotonic() - started
    assert elapsed < 2 + 2, f"gave up after {elapsed:.1f} s"
    assert elapsed >= 1.5  # it did wait for the answer, up to the deadline
    assert "WEBHOOK_TIMEOUT_S" in str(failed.value)


def test_webhook_timeout_must_be_positive():
    with pytest.raises(jobs.Permanent, match="WEBHOOK_TIMEOUT_S"):
        webhook("http://127.0.0.1:9/h", WEBHOOK_TIMEOUT_S=0).handle(hook_event())


# --- private files: the database and backups -------------------------------------------------------


@pytest.mark.sqlite_only
def test_database_wal_shm_and_backup_are_private(tmp_path, loose_umask):
    fresh = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(tmp_path / "fresh"),
            "SECRET_KEY": "test-secret",
            "KOO_ACCESS_KEY": KEY,
            "KOO_KIT_ACCESS_KEY": KIT_KEY,
        }
    )
    try:
        with fresh.app_context():
            init_db()
            path = db.engine.url.database
        market = Marketplace(fresh, fresh.test_client())
        market.g2(new_order(order="PRIVATE1"))
        assert os.path.exists(path + "-wal") and os.path.exists(path + "-shm")  # the pool keeps them open
        assert (mode(path), mode(path + "-wal"), mode(path + "-shm")) == (0o600, 0o600, 0o600)

        archive = tmp_path / "backups" / "isvapp.tar.gz"
        archive.parent.mkdir()
        result = fresh.test_cli_runner().invoke(args=["backup", str(archive)])
        assert result.exit_code == 0, result.output
        assert mode(archive) == 0o600 and not archive.is_symlink()
        assert os.listdir(archive.parent) == ["isvapp.tar.gz"]  # its staging folder is gone
    finally:
        with fresh.app_context():
            db.engine.dispose()


@pytest.mark.sqlite_only
def test_a_backup_refuses_a_symlink_at_its_path_instead_of_writing_through_it(app, runner, tmp_path, loose_umask):
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    path = tmp_path / "isvapp.tar.gz"
    os.symlink(victim, path)
    result = runner.invoke(args=["backup", str(path)])
    assert result.exit_code != 0 and "exists" in result.output
    assert victim.read_text() == "untouched" and path.is_symlink()


# --- private files: kit-keygen and the license signing key ---------------------------------------------


def test_kit_keygen_never_writes_through_a_symlink(app, runner, tmp_path, loose_umask):
    path = app.config["KOO_KIT_RSA_PRIVATE_KEY"]
    victim = tmp_path / "victim"
    victim.write_text("untouched")

    os.symlink(victim, path + ".new")  # where a fixed temporary name would be: the temporary's is random now
    made = runner.invoke(args=["kit-keygen"])
    assert made.exit_code == 0, made.output
    assert victim.read_text() == "untouched" and os.path.islink(path + ".new") and not os.path.islink(path)
    os.unlink(path + ".new")
    os.unlink(path)

    os.symlink(victim, path)  # at the final path
    refused = runner.invoke(args=["kit-keygen", "--force"])
    assert refused.exit_code != 0 and "symbolic link" in refused.output
    assert victim.read_text() == "untouched" and os.path.islink(path)
    os.unlink(path)
    os.symlink(tmp_path / "nowhere", path)  # dangling: "does not exist", yet not to be written through
    assert runner.invoke(args=["kit-keygen"]).exit_code != 0
    assert not (tmp_path / "nowhere").exists()
    os.unlink(path)

    made = runner.invoke(args=["kit-keygen"])
    assert made.exit_code == 0, made.output
    assert mode(path) == 0o600 and not os.path.islink(path) and not os.path.lexists(path + ".new")
    assert victim.read_text() == "untouched"


def test_license_signing_key_is_private_and_never_written_through_a_symlink(tmp_path, loose_umask):
    from isvapp.storage import keys

    path = str(tmp_path / "keys" / "license.pem")
    os.makedirs(os.path.dirname(path))
    os.symlink(tmp_path / "nowhere", path)
    with pytest.raises(RuntimeError, match="symbolic link"):
        keys.signing_key(path)
    assert not (tmp_path / "nowhere").exists()
    os.unlink(path)
    keys.signing_key(path)
    assert mode(path) == 0o600
    assert sorted(os.listdir(os.path.dirname(path))) == ["license.pem"]  # no temporary left
    keys._signers.pop(path, None)


# --- what a scanner reads on every answer (isvapp selfcheck; tests/test_selfcheck.py runs it live) ------


@pytest.mark.parametrize(
    "method, path, status",
    [("GET", "/no-such-page", 404), ("PUT", "/admin/login", 405), ("GET", "/static/", 404)],
)
def test_a_404_or_an_error_page_carries_the_security_headers(client, method, path, status):
    page = client.open(path, method=method)
    assert page.status_code == status and page.mimetype == "text/html"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"


def test_the_pages_own_headers_win_over_the_defaults(client):
    page = client.get("/admin/login")
    assert (
        page.headers["Referrer-Policy"] == "same-origin"
        and "form-action 'self'" in page.headers["Content-Security-Policy"]
    )
    assert len(page.headers.getlist("Content-Security-Policy")) == 1


def test_marketplace_answers_say_nosniff_and_keep_their_bytes(market):
    answer = market.g2(new_order(order="NOSNIFF1", business="nosniff-1"))
    assert answer.headers["X-Content-Type-Options"] == "nosniff" and answer.headers["Cache-Control"] == "no-store"
    assert answer.data == b'{"resultCode":"000000","resultMsg":"success.","instanceId":"nosniff-1"}'
    assert "Content-Security-Policy" not in answer.headers  # JSON: nothing to run, nothing to frame


def test_cookie_deletions_and_the_language_cookie_are_flagged_over_https(client):
    https = {"base_url": "https://isv.example.com"}
    for path, name in (("/login/no-such-tenant", "isvapp_login"), ("/logout", "isvapp_buyer")):
        (cookie,) = [c for c in client.get(path, **https).headers.getlist("Set-Cookie") if c.startswith(name + "=")]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie, cookie
    (cookie,) = [c for c in client.get("/admin/login?lang=zh", **https).headers.getlist("Set-Cookie") if "=zh" in c]
    assert "Secure" in cookie and "HttpOnly" in cookie, cookie
    plain = client.get("/admin/login?lang=en").headers.getlist("Set-Cookie")
    assert any("=en;" in c and "Secure" not in c for c in plain)  # over http a Secure cookie is lost
