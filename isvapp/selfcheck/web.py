"""What a scanner reads from the answers: the redirect from http, HSTS, security headers on each
kind of page, version banners, directory listings, stack traces, cookie flags, open redirects.

Requests go out with http.client, one connection each, never following a redirect (a scanner
judges the redirect itself). The certificate is not verified here: the TLS checks judge it, and
a bad certificate must not hide the headers behind it.
"""

import http.client
import re
import secrets
import ssl
import urllib.parse
from dataclasses import dataclass, field

from . import BAD, OK, WARN, Finding

BODY_LIMIT = 256 * 1024
HSTS_MIN_S = 365 * 86400
EVIL = "evil.example"


@dataclass
class Page:
    """One answer: status, headers as sent (in order, repeats kept), the start of the body."""

    kind: str
    method: str
    path: str
    status: int = 0
    headers: list = field(default_factory=list)
    body: bytes = b""
    error: str | None = None

    def header(self, name):
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def html(self):
        return (self.header("Content-Type") or "").lower().startswith("text/html")

    @property
    def where(self):
        return f"{self.kind} ({self.method} {self.path} -> {self.status})"


class _TlsConnection(http.client.HTTPSConnection):
    """HTTPS to ``address`` with the host's name in SNI: the host as the public sees it, reached
    at the address given (``--connect-to``)."""

    def __init__(self, address, port, server_name, tls_context, timeout):
        super().__init__(address, port, timeout=timeout)
        self.server_name, self.tls_context = server_name, tls_context

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self.tls_context.wrap_socket(self.sock, server_hostname=self.server_name)


def _unverified_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def fetch(target, kind, method, path, body=None, content_type=None, https=True):
    """One request; a failure to connect or read is kept on the page (``error``), never raised."""
    page = Page(kind, method, path)
    connection: http.client.HTTPConnection
    if https:
        port = target.port
        connection = _TlsConnection(target.address, port, target.host, _unverified_context(), target.timeout_s)
    else:
        port = target.http_port
        connection = http.client.HTTPConnection(target.address, port, timeout=target.timeout_s)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", target.host if port == (443 if https else 80) else f"{target.host}:{port}")
        connection.putheader("User-Agent", "isvapp-selfcheck")
        if body is not None:
            connection.putheader("Content-Type", content_type or "application/octet-stream")
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        page.status, page.headers = response.status, response.getheaders()
        page.body = response.read(BODY_LIMIT)
    except (OSError, http.client.HTTPException) as error:
        page.error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    finally:
        connection.close()
    return page


def page_kinds(token):
    """(kind, method, path, body, carries personal data) for each kind of page a scanner meets."""
    return [
        ("marketplace route", "POST", "/produce", b"{}", True),
        ("merchant's page", "GET", "/admin/login", None, True),
        ("buyer's login", "GET", "/login", None, True),
        ("buyer's login, refused", "GET", f"/login/selfcheck-{token}", None, True),
        ("404", "GET", f"/selfcheck-{token}", None, False),
        ("error", "PUT", "/admin/login", b"", False),
    ]


def check(target):
    token = secrets.token_hex(4)
    pages = [
        fetch(target, kind, method, path, body, "application/json" if body else None)
        for kind, method, path, body, _ in page_kinds(token)
    ]
    reached = [p for p in pages if p.error is None]
    if not reached:
        return [
            Finding(
                "web.unreachable",
                BAD,
                f"no HTTPS answer from {target.base}: {pages[0].error}",
                "Check nginx (or the ELB's listener) and that gunicorn runs behind it.",
            )
        ]
    personal = {kind for kind, *_, carries in page_kinds(token) if carries}
    proxy_error = fetch(target, "proxy's error page", "GET", "/%")  # a malformed path: nginx answers it
    listings = [fetch(target, "static files", "GET", path) for path in ("/static/", "/admin/static/", "/login/static/")]
    console = fetch(target, "debugger console", "GET", "/console")
    language = fetch(target, "language switch", "GET", "/admin/login?lang=zh")  # a link on every page
    plain = fetch(target, "plain http", "GET", "/admin/login?selfcheck=1", https=False)
    probes = [fetch(target, "redirect probe", "GET", path) for path in redirect_probes()]
    everything = [p for p in [*pages, proxy_error, *listings, console, language, plain, *probes] if p.error is None]
    return (
        [redirect_to_https(plain, target)]
        + [hsts(pages[1])]
        + headers(reached, personal)
        + [banner(everything)]
        + [directory_listing(listings)]
        + [stack_traces([*pages, proxy_error, console])]
        + cookies(everything)
        + [open_redirects(probes, target)]
    )


def redirect_to_https(page, target):
    fix = (
        f"nginx: a server on port {target.http_port} that only answers "
        "`return 301 https://$host$request_uri;` (the ELB: an HTTP listener redirecting to the HTTPS one)"
    )
    if page.error is not None:
        return Finding(
            "http.redirect",
            WARN,
            f"nothing answers plain http on port {target.http_port} ({page.error}): buyers who type the domain "
            "get an error instead of the https site",
            fix,
        )
    location = page.header("Location") or ""
    parts = urllib.parse.urlsplit(urllib.parse.urljoin(f"http://{target.host}{page.path}", location))
    if page.status in (301, 302, 303, 307, 308) and parts.scheme == "https" and parts.hostname == target.host:
        if page.status in (301, 308):
            return Finding("http.redirect", OK, f"port {target.http_port} answers {page.status} to {location}")
        return Finding("http.redirect", WARN, f"port {target.http_port} redirects with a temporary {page.status}", fix)
    if 300 <= page.status < 400:
        return Finding(
            "http.redirect", BAD, f"port {target.http_port} redirects to {location or 'nowhere'}, not to https", fix
        )
    return Finding(
        "http.redirect",
        BAD if page.status < 400 else WARN,
        f"port {target.http_port} answers {page.status} in plain http instead of redirecting to https",
        fix,
    )


def hsts(page):
    fix = 'nginx: add_header Strict-Transport-Security "max-age=31536000" always; in the https server'
    value = page.header("Strict-Transport-Security")
    if value is None:
        return Finding("http.hsts", BAD, "no Strict-Transport-Security header", fix, page.where)
    match = re.search(r"max-age\s*=\s*\"?(\d+)", value, re.IGNORECASE)
    age = int(match.group(1)) if match else 0
    if age < HSTS_MIN_S:
        return Finding("http.hsts", WARN, f"HSTS max-age is {age} s, under a year: {value}", fix, page.where)
    return Finding("http.hsts", OK, f"HSTS: {value}")


def _frame_policy(page):
    frame = (page.header("X-Frame-Options") or "").strip().upper()
    csp = " ".join(page.all("Content-Security-Policy")).lower()
    return frame in ("DENY", "SAMEORIGIN") or "frame-ancestors" in csp


HEADER_RULES = [  # (id, severity, applies to (page, carries personal data), passes, message, fix)
    (
        "header.nosniff",
        BAD,
        lambda page, personal: True,
        lambda page: (page.header("X-Content-Type-Options") or "").strip().lower() == "nosniff",
        "no X-Content-Type-Options: nosniff",
        "add_header X-Content-Type-Options nosniff always; (isvapp sets it on its own answers)",
    ),
    (
        "header.frame_policy",
        BAD,
        lambda page, personal: page.html,
        _frame_policy,
        "no frame policy (X-Frame-Options or CSP frame-ancestors): the page can be framed (clickjacking)",
        "add_header X-Frame-Options DENY always; (isvapp sets it on its own pages)",
    ),
    (
        "header.csp",
        BAD,
        lambda page, personal: page.html,
        lambda page: bool(page.header("Content-Security-Policy")),
        "no Content-Security-Policy on an HTML page",
        "add_header Content-Security-Policy \"default-src 'none'; frame-ancestors 'none'\" always; for pages "
        "nginx makes itself (isvapp sets its own)",
    ),
    (
        "header.referrer_policy",
        WARN,
        lambda page, personal: page.html,
        lambda page: bool(page.header("Referrer-Policy")),
        "no Referrer-Policy",
        "add_header Referrer-Policy no-referrer always;",
    ),
    (
        "header.no_store",
        BAD,
        lambda page, personal: personal,
        lambda page: "no-store" in (page.header("Cache-Control") or "").lower(),
        "pages that carry personal data or credentials may be cached: no Cache-Control: no-store",
        "keep isvapp's Cache-Control (never proxy_hide_header it, nor proxy_cache these routes)",
    ),
]


def headers(pages, personal):
    findings = []
    for finding_id, severity, applies, passes, message, fix in HEADER_RULES:
        looked = [p for p in pages if applies(p, p.kind in personal)]
        failed = [p for p in looked if not passes(p)]
        findings += [Finding(finding_id, severity, message, fix, p.where) for p in failed]
        if looked and not failed:
            findings.append(Finding(finding_id, OK, f"present on all {len(looked)} pages it applies to"))
    return findings


VERSION = re.compile(
    rb"\b(?:nginx|apache|openresty|tengine|gunicorn|werkzeug|python|php|iis|jetty|tomcat)/\d[\w.]*", re.I
)


def banner(pages):
    seen = set()
    for page in pages:
        for name in ("Server", "X-Powered-By", "X-AspNet-Version"):
            for value in page.all(name):
                if name != "Server" or re.search(r"\d", value):
                    seen.add(f"{name}: {value}")
        if page.status >= 400 and (match := VERSION.search(page.body)):
            seen.add(f"{match.group(0).decode('latin-1')} in the body of a {page.status} page")
    if seen:
        return Finding(
            "server.banner",
            BAD,
            f"the server tells its software's version: {'; '.join(sorted(seen))}",
            "nginx: server_tokens off; in the http block (and no X-Powered-By from anything behind it)",
        )
    return Finding("server.banner", OK, f"no version in {len(pages)} answers")


LISTING = re.compile(rb"<title>\s*Index of /|Directory listing for /|<h1>\s*Index of /", re.I)


def directory_listing(pages):
    listed = [p.path for p in pages if p.status == 200 and LISTING.search(p.body)]
    if listed:
        return Finding(
            "server.directory_listing",
            BAD,
            f"directory listings are served at {', '.join(listed)}",
            "nginx: remove autoindex on; (isvapp serves its own static files and lists none)",
        )
    return Finding("server.directory_listing", OK, f"no listing at {', '.join(p.path for p in pages)}")


TRACE = re.compile(
    rb"Traceback \(most recent call last\)|Werkzeug Debugger|__debugger__|File \"/[^\"]+\.py\", line \d+|"
    rb"sqlalchemy\.exc\.|jinja2\.exceptions\.|\bat (?:java|org|com)\.[\w.$]+\(",
)


def stack_traces(pages):
    shown = [p.where for p in pages if p.error is None and TRACE.search(p.body)]
    console = next((p for p in pages if p.kind == "debugger console"), None)
    if console is not None and console.status == 200 and b"console" in console.body.lower():
        shown.append(f"{console.where}: an interactive debugger console")
    if shown:
        return Finding(
            "server.stack_trace",
            BAD,
            f"an error page shows a stack trace or a debugger: {'; '.join(shown)}",
            "Never serve with FLASK_DEBUG or `flask run --debug`: run gunicorn with wsgi:app (scripts/run.sh).",
        )
    return Finding("server.stack_trace", OK, "no stack trace or debugger on the error pages")


def parse_cookie(header):
    """(name, value, {attribute: value}) of one Set-Cookie header; flags have the value True."""
    first, *rest = header.split(";")
    name, _, value = first.strip().partition("=")
    attributes = {}
    for part in rest:
        key, has_value, attribute = part.strip().partition("=")
        if key:
            attributes[key.strip().lower()] = attribute.strip() if has_value else True
    return name.strip(), value.strip(), attributes


def _is_deletion(value, attributes):
    return value in ("", '""') or str(attributes.get("max-age", "1")).strip() == "0"


COOKIE_RULES = [  # (id, severity for a live cookie, passes, message)
    ("cookie.secure", BAD, lambda a: a.get("secure") is True, "is not marked Secure"),
    ("cookie.httponly", BAD, lambda a: a.get("httponly") is True, "is not marked HttpOnly"),
    (
        "cookie.samesite",
        WARN,
        lambda a: str(a.get("samesite", "")).lower() in ("lax", "strict"),
        "has no SameSite=Lax or Strict",
    ),
]


def cookies(pages):
    """Every cookie set on any answer. One that only deletes itself (empty, Max-Age=0) carries
    nothing, but scanners read the header, not its meaning: its missing flags are warnings."""
    findings, names, judged = [], set(), set()
    for page in pages:
        for header in page.all("Set-Cookie"):
            name, value, attributes = parse_cookie(header)
            names.add(name)
            deletion = _is_deletion(value, attributes)
            for finding_id, severity, passes, message in COOKIE_RULES:
                if passes(attributes) or (finding_id, name, deletion) in judged:
                    continue
                judged.add((finding_id, name, deletion))
                findings.append(
                    Finding(
                        finding_id,
                        WARN if deletion else severity,
                        f"cookie {name} {message}" + (" (a deletion: it carries no value)" if deletion else ""),
                        "isvapp marks its cookies itself when it sees https: behind nginx set PROXY_FIX_HOPS = 1 "
                        "and proxy_set_header X-Forwarded-Proto https; (docs/deploy.md)",
                        page.where,
                    )
                )
    if not findings:
        what = f"cookies {', '.join(sorted(names))} are" if names else "no cookie is set on the pages looked at;"
        findings.append(Finding("cookie.flags", OK, f"{what} Secure, HttpOnly and SameSite"))
    return findings


def redirect_probes():
    evil = f"https://{EVIL}/"
    return [
        f"/admin/login?next={urllib.parse.quote(evil, safe='')}",
        f"/admin/login?next=//{EVIL}/",
        f"/admin/login?next=/\\{EVIL}/",
        f"/login?next={urllib.parse.quote(evil, safe='')}",
        f"/login/refresh?next={urllib.parse.quote(evil, safe='')}",
        f"/logout?redirect_url={urllib.parse.quote(evil, safe='')}",
        f"/logout?next={urllib.parse.quote(evil, safe='')}",
        f"/login/logged-out?next={urllib.parse.quote(evil, safe='')}",
    ]


META_REFRESH = re.compile(rb"<meta[^>]+http-equiv=[\"']?refresh[^>]+url=[\"']?(?:https?:)?//" + EVIL.encode(), re.I)


def _leaves_for_evil(page, target):
    location = (page.header("Location") or "").replace("\\", "/")
    if 300 <= page.status < 400 and location:
        return urllib.parse.urlsplit(urllib.parse.urljoin(target.base + page.path, location)).hostname == EVIL
    return bool(META_REFRESH.search(page.body))


def open_redirects(probes, target):
    open_ = [p.path for p in probes if p.error is None and _leaves_for_evil(p, target)]
    if open_:
        return Finding(
            "redirect.open",
            BAD,
            f"open redirect: {', '.join(open_)} sends the browser to {EVIL}",
            "Redirect only to paths of this site (isvapp checks next and redirect_url itself; look for a rewrite or "
            "another application in front that does not).",
        )
    return Finding("redirect.open", OK, f"none of {len(probes)} login and logout probes leaves the site")
