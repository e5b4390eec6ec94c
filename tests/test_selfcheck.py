"""`isvapp selfcheck`: a real nginx (Debian's) on 127.0.0.1, with a throwaway CA, in front of a
real isvapp gunicorn, configured once well and once badly; the bad one is caught point by point.

The well configured nginx is what docs/deploy.md asks for: TLS 1.2 and 1.3 with forward-secret
suites, HSTS, server_tokens off, port 80 redirecting to https, X-Forwarded-Proto passed on. The
badly configured one is what the KooGallery scan refuses: TLS 1.0 and 1.1 with legacy suites
(OpenSSL 3 offers them only at @SECLEVEL=0), no HSTS, the version banner, plain http served, a
directory listing, no X-Forwarded-Proto (so the cookies lose Secure), and a certificate from an
unknown CA, for another name, expiring in ten days.
"""

import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from isvapp import selfcheck
from isvapp.selfcheck import BAD, OK, WARN, Finding, tls, web

from .live import ROOT, LiveServer, free_port, stop_process

pytestmark = pytest.mark.live  # every test here starts a server, a process or a browser

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
needs_nginx = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed (apt-get install nginx)")
HOST = "localhost"


# --- a throwaway PKI ------------------------------------------------------------------------------


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(obj):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(common_name):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_server_cert(ca_key, ca_cert, name, days, rsa_key=False):
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """The trusted CA (its bundle is what --ca-file gets), a good certificate for localhost, and a
    bad one: from an unknown CA, for another name, expiring in ten days (RSA, so that the suites
    without forward secrecy are offered too)."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = make_ca("isvapp selfcheck test CA")
    (folder / "ca.pem").write_bytes(_pem(ca_cert))
    key, cert = make_server_cert(ca_key, ca_cert, HOST, 90)
    (folder / "good.pem").write_bytes(_pem(cert) + _pem(ca_cert))
    (folder / "good.key").write_bytes(_pem(key))
    stranger_key, stranger_cert = make_ca("somebody else's CA")
    key, cert = make_server_cert(stranger_key, stranger_cert, "other.example", 10, rsa_key=True)
    (folder / "bad.pem").write_bytes(_pem(cert))
    (folder / "bad.key").write_bytes(_pem(key))
    return folder


# --- nginx ----------------------------------------------------------------------------------------

COMMON = """
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
user root;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy; fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
    default_type application/octet-stream;
{servers}
}}
"""

GOOD = """
    server_tokens off;
    server {{
        listen 127.0.0.1:{http_port};
        server_name {host};
        return 301 https://$host:{https_port}$request_uri;
    }}
    server {{
        listen 127.0.0.1:{https_port} ssl http2;
        server_name {host};
        ssl_certificate {pki}/good.pem;
        ssl_certificate_key {pki}/good.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
        add_header Strict-Transport-Security "max-age=63072000" always;
        client_max_body_size 16m;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto https;
        }}
    }}
"""

BAD_SERVERS = """
    server_tokens on;
    server {{
        listen 127.0.0.1:{http_port};
        server_name {host};
        location / {{ proxy_pass http://127.0.0.1:{upstream}; proxy_set_header Host $http_host; }}
    }}
    server {{
        listen 127.0.0.1:{https_port} ssl;
        server_name {host};
        ssl_certificate {pki}/bad.pem;
        ssl_certificate_key {pki}/bad.key;
        ssl_protocols TLSv1 TLSv1.1 TLSv1.2;
        ssl_ciphers "ALL:eNULL:@SECLEVEL=0";
        location /static/ {{ alias {pki}/; autoindex on; }}
        location / {{ proxy_pass http://127.0.0.1:{upstream}; proxy_set_header Host $http_host; }}
    }}
"""


class Nginx:
    """Debian's nginx in the foreground (daemon off), on two free loopback ports."""

    def __init__(self, folder, servers, upstream, pki):
        self.folder, self.proc = folder, None
        self.http_port, self.https_port = free_port(), free_port()
        self.url = f"https://{HOST}:{self.https_port}"
        servers = servers.format(
            host=HOST, http_port=self.http_port, https_port=self.https_port, upstream=upstream, pki=pki
        )
        conf = COMMON.format(prefix=folder, servers=servers)
        (folder / "nginx.conf").write_text(conf)

    def start(self):
        command = [NGINX, "-e", str(self.folder / "error.log"), "-p", str(self.folder), "-c", "nginx.conf"]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        self.proc = subprocess.Popen([*command, "-g", "daemon off;"], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read().decode() if self.proc.stderr else ""
            try:
                for port in (self.http_port, self.https_port):
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("nginx did not listen in time")

    def stop(self):
        if self.proc:
            stop_process(self.proc)
            if self.proc.stderr:
                self.proc.stderr.close()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    folder = tmp_path_factory.mktemp("isvapp")
    server = LiveServer(folder, workers=1, env={"ISVAPP_KOO_ACCESS_KEY": "selfcheck-key-0123456789abcdef"})
    with server:
        yield server


def _nginx(tmp_path_factory, name, servers, upstream, pki):
    server = Nginx(tmp_path_factory.mktemp(name), servers, upstream.port, pki)
    server.start()
    return server


@pytest.fixture(scope="module")
def good_nginx(tmp_path_factory, upstream, pki):
    server = _nginx(tmp_path_factory, "good", GOOD, upstream, pki)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bad_nginx(tmp_path_factory, upstream, pki):
    server = _nginx(tmp_path_factory, "bad", BAD_SERVERS, upstream, pki)
    yield server
    server.stop()


def selfcheck_cli(upstream, nginx, pki):
    """`isvapp selfcheck URL` as a merchant runs it, with the server's instance folder."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "isvapp",
            "selfcheck",
            nginx.url,
            "--ca-file",
            str(pki / "ca.pem"),
            "--http-port",
            str(nginx.http_port),
            "--connect-to",
            "127.0.0.1",
        ],
        cwd=ROOT,
        env=upstream.env,
        capture_output=True,
        text=True,
        timeout=300,
    )


LINE = re.compile(r"^(BAD|WARN|OK) +(\S+)  (.*)$")


def printed(result):
    """{finding id: [(severity, message), ...]} from the command's output, as a merchant reads it."""
    found = {}
    for line in result.stdout.splitlines():
        if match := LINE.match(line):
            found.setdefault(match.group(2), []).append((match.group(1).lower(), match.group(3)))
    return found


def kept(upstream):
    """What the go-live page reads back: last_selfcheck() on the server's database."""
    from isvapp import create_app
    from isvapp.background.status import last_selfcheck
    from isvapp.extensions import db

    app = create_app(
        {
            "INSTANCE_PATH": str(upstream.instance_path),
            "SECRET_KEY": "x" * 40,
            "SQLALCHEMY_DATABASE_URI": upstream.database_uri,
        }
    )
    with app.app_context():
        try:
            return last_selfcheck()
        finally:
            db.engine.dispose()


# --- the well and the badly configured nginx -----------------------------------------------------------


@needs_nginx
def test_a_well_configured_nginx_passes(upstream, good_nginx, pki):
    result = selfcheck_cli(upstream, good_nginx, pki)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    findings = printed(result)
    assert {severity for found in findings.values() for severity, _ in found} == {OK}
    assert set(findings) >= {
        "tls.protocols",
        "tls.ciphers",
        "tls.known_bugs",
        "cert.chain",
        "cert.hostname",
        "cert.expiry",
        "http.redirect",
        "http.hsts",
        "header.nosniff",
        "header.frame_policy",
        "header.csp",
        "header.referrer_policy",
        "header.no_store",
        "server.banner",
        "server.directory_listing",
        "server.stack_trace",
        "cookie.flags",
        "redirect.open",
    }
    assert "0 bad, 0 warn" in result.stdout
    last = kept(upstream)  # the go-live page's row
    assert (last["url"], last["worst"], last["findings"]) == (good_nginx.url, OK, [])
    assert last["counts"][OK] == sum(len(found) for found in findings.values())
    assert isinstance(last["at"], datetime.datetime)


@needs_nginx
def test_a_badly_configured_nginx_is_caught_point_by_point(upstream, bad_nginx, pki):
    result = selfcheck_cli(upstream, bad_nginx, pki)
    print(result.stdout)
    assert result.returncode == 1, result.stdout + result.stderr
    findings = printed(result)
    severity = {finding_id: {s for s, _ in found} for finding_id, found in findings.items()}
    expected = {
        "tls.tls1_0": {BAD},  # TLS 1.0 on
        "tls.tls1_1": {BAD},
        "tls.cbc_tls1_0": {BAD},  # TLS 1.0 with CBC suites (BEAST)
        "tls.weak_cipher": {BAD},  # NULL and anonymous suites (ALL:eNULL:@SECLEVEL=0)
        "tls.no_forward_secrecy": {WARN},  # TLS_RSA_WITH_*
        "cert.chain": {BAD},  # somebody else's CA
        "cert.hostname": {BAD},  # other.example
        "cert.expiry": {WARN},  # ten days left
        "http.redirect": {BAD},  # port 80 serves the pages
        "http.hsts": {BAD},  # no HSTS
        "server.banner": {BAD},  # server_tokens on
        "server.directory_listing": {BAD},  # autoindex on
        # no X-Forwarded-Proto: isvapp cannot tell it is behind https (the session and language cookies are
        # bad, the buyer login's deletions warnings)
        "cookie.secure": {BAD, WARN},
    }
    for finding_id, severities in expected.items():
        assert severity.get(finding_id) == severities, (finding_id, findings.get(finding_id))
    assert "Server: nginx/1." in findings["server.banner"][0][1]
    assert "NULL" in findings["tls.weak_cipher"][0][1] and "_anon_" in findings["tls.weak_cipher"][0][1]
    # what isvapp itself answers stays right behind the bad proxy
    for finding_id in ("header.nosniff", "header.frame_policy", "header.csp", "header.no_store", "redirect.open"):
        assert severity[finding_id] == {OK}, findings[finding_id]
    assert "fix: nginx: server_tokens off;" in result.stdout and "fix: nginx: ssl_protocols TLSv1.2" in result.stdout

    last = kept(upstream)  # the go-live page's row
    assert last["url"] == bad_nginx.url and last["worst"] == BAD
    assert last["counts"][BAD] == sum(1 for found in findings.values() for s, _ in found if s == BAD)
    assert {f["id"] for f in last["findings"]} == {i for i, found in severity.items() if found - {OK}}
    assert all(f["severity"] in (BAD, WARN) and f["fix"] for f in last["findings"])
    json.dumps({**last, "at": str(last["at"])})  # plain data, for a page or a JSON view


# --- the pieces, without a network ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, problem",
    [
        ("http://isv.example.com", "https"),
        ("isv.example.com", "https"),
        ("https://", "no host"),
    ],
)
def test_a_url_that_cannot_be_checked_is_refused_with_its_reason(url, problem):
    with pytest.raises(selfcheck.TargetError, match=problem):
        selfcheck.target(url)


def test_the_target_keeps_host_and_port():
    where = selfcheck.target("https://ISV.example.com:8443/produce", http_port=8080)
    assert (where.host, where.port, where.http_port) == ("isv.example.com", 8443, 8080)
    assert where.base == "https://isv.example.com:8443"
    assert selfcheck.target("https://isv.example.com").base == "https://isv.example.com"


@pytest.mark.parametrize(
    "host, names, matches",
    [
        ("isv.example.com", ["isv.example.com"], True),
        ("ISV.Example.com.", ["isv.example.com"], True),
        ("isv.example.com", ["*.example.com"], True),
        ("a.isv.example.com", ["*.example.com"], False),  # a wildcard is one label
        ("example.com", ["*.example.com"], False),
        ("isv.example.com", ["other.example"], False),
        ("127.0.0.1", ["127.0.0.1"], False),  # an address must be listed as one
    ],
)
def test_hostname_matching_follows_rfc_6125(host, names, matches):
    assert tls.hostname_matches(host, names, []) is matches


def test_an_address_matches_an_ip_entry():
    from ipaddress import ip_address

    assert tls.hostname_matches("127.0.0.1", [], [ip_address("127.0.0.1")])


def test_cookies_are_read_as_a_scanner_reads_them():
    assert web.parse_cookie("session=abc; Secure; HttpOnly; Path=/; SameSite=Lax") == (
        "session",
        "abc",
        {"secure": True, "httponly": True, "path": "/", "samesite": "Lax"},
    )
    page = web.Page("x", "GET", "/", 200, [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=; Max-Age=0; Path=/")])
    found = {(f.id, f.severity, f.message.split()[1]) for f in web.cookies([page])}
    assert ("cookie.secure", BAD, "a") in found and ("cookie.httponly", BAD, "a") in found
    assert ("cookie.samesite", WARN, "a") in found
    assert ("cookie.secure", WARN, "b") in found  # a deletion carries nothing: a warning only


def test_the_summary_keeps_counts_and_what_is_not_ok():
    findings = [
        Finding("a", OK, "fine"),
        Finding("b", WARN, "hmm", "do this"),
        Finding("c", BAD, "no", "do that", "404"),
    ]
    kept = selfcheck.summary("https://x.example", findings, at=datetime.datetime(2026, 12, 4, 10, 0))
    assert kept["worst"] == BAD and kept["counts"] == {BAD: 1, WARN: 1, OK: 1}
    assert [f["id"] for f in kept["findings"]] == ["b", "c"] and kept["at"] == "2026-12-04T10:00:00Z"
    assert selfcheck.worst([]) == OK and selfcheck.worst(findings[:2]) == WARN


def test_nothing_listening_is_one_clear_finding():
    port = free_port()
    findings = selfcheck.run(f"https://{HOST}:{port}", http_port=free_port(), connect_to="127.0.0.1", timeout_s=3)
    ids = {f.id: f for f in findings}
    assert ids["tls.unreachable"].severity == BAD and "Connection refused" in ids["tls.unreachable"].message
    assert ids["web.unreachable"].severity == BAD


def test_without_sslyze_tls_is_a_warning_that_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sslyze", None)  # as if the extra were not installed
    (finding,) = tls.check(selfcheck.target("https://isv.example.com"))
    assert (finding.id, finding.severity) == ("tls.not_checked", WARN) and "isvapp[selfcheck]" in finding.fix
