"""The security self-check: a public deployment seen from outside, as the KooGallery scan sees it.

Before a product is published, the Seller Console runs a vulnerability scan against the
production URL (SaaS类商品安全漏洞扫描; 云商店商品安全审核标准3.0). isvapp's own pages are hardened,
but the scan sees the whole deployment: nginx's (or the ELB's) TLS, the plain-http port, the
headers on a 404 and on an error, what a cookie carries. This package looks at a URL the way a
scanner does and says what it would likely flag, each finding with its fix:

- ``tls``: protocol versions, cipher suites, the certificate chain, hostname and expiry, and the
  old OpenSSL bugs scanners still probe for (sslyze does the handshakes);
- ``web``: the redirect from http, HSTS, security headers on every kind of page, the server's
  version banner, directory listings, stack traces, cookie flags, open redirects.

Pure: no Flask, no database. ``isvapp selfcheck URL`` (isvapp/cli.py) prints a run and keeps
its summary for the go-live page (isvapp.background.status.last_selfcheck).
"""

import urllib.parse
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

BAD, WARN, OK = "bad", "warn", "ok"
SEVERITIES = (BAD, WARN, OK)  # worst first


@dataclass(frozen=True)
class Finding:
    """One thing the scan would (bad), might (warn) or would not (ok) flag.

    ``id`` is stable (tests, the go-live page and a merchant's notes refer to it); ``where`` says
    which page, cookie or probe it is about when one check runs on several.
    """

    id: str
    severity: str
    message: str
    fix: str = ""
    where: str = ""

    def as_dict(self):
        return asdict(self)


class TargetError(ValueError):
    """The URL cannot be checked as given (not https, no host, ...)."""


@dataclass(frozen=True)
class Target:
    """What to look at: the public https URL, and how to reach it.

    ``connect_to`` is an address to connect to instead of the name's DNS answer (checking a new
    host before the domain points at it); ``ca_file`` a PEM bundle to trust instead of the public
    CAs (a private CA, or the tests' throwaway one).
    """

    url: str
    host: str
    port: int = 443
    http_port: int = 80
    connect_to: str | None = None
    ca_file: str | None = None
    timeout_s: float = 10.0
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def base(self):
        return f"https://{self.host}" + ("" if self.port == 443 else f":{self.port}")

    @property
    def address(self):
        return self.connect_to or self.host


def target(url, **options):
    """A :class:`Target` for ``url`` (https://host[:port], any path is ignored)."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme != "https":
        raise TargetError(f"{url!r}: give the public https URL (https://your.domain), as the marketplace calls it")
    if not parts.hostname:
        raise TargetError(f"{url!r} names no host")
    return Target(url=url, host=parts.hostname, port=parts.port or 443, **options)


def run(url, **options):
    """Every check against ``url``; the findings, worst first (then in check order)."""
    from . import tls, web

    where = target(url, **options)
    findings = tls.check(where) + web.check(where)
    order = {severity: index for index, severity in enumerate(SEVERITIES)}
    return sorted(findings, key=lambda f: order[f.severity])


def worst(findings):
    """The worst severity among ``findings`` (ok when there are none)."""
    severities = {f.severity for f in findings}
    return next((s for s in SEVERITIES if s in severities), OK)


def summary(url, findings, at=None):
    """What is kept of a run (JSON-ready): the counts, and every finding that is not ok."""
    return {
        "url": url,
        "at": (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "worst": worst(findings),
        "counts": {s: sum(1 for f in findings if f.severity == s) for s in SEVERITIES},
        "findings": [f.as_dict() for f in findings if f.severity != OK],
    }
