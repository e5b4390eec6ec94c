"""The Kit suite's account login: a buyer through the whole login, as the Seller Console's
unified-login test asks, and one who must be refused.

The simulator plays the tenant's IdP as well (the fake IdP, on this host), registered with the
clientId and secret it sent in applicationSync and the users of authSync, so this runs only
against a server on this host (which can reach 127.0.0.1). The browser is played with a cookie
jar and redirects followed by hand, so each hop can be checked.
"""

import http.cookiejar
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import jwt

from ..fakeidp import create_fake_idp
from ..serving import Running
from .client import Step

PASSWORD = "sim-password"
OUTSIDER = "sim-outsider"  # known to the IdP, never authorised by authSync


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Browser:
    """Cookies kept, redirects not followed: each hop is one call. ``marks``: the simulator's
    mark, sent to the server under test (never to the IdP) so the login counts as simulated."""

    def __init__(self, timeout, marks=None, server=""):
        self.jar, self.timeout = http.cookiejar.CookieJar(), timeout
        self.marks, self.server = marks or {}, server
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirects)

    def open(self, url, form=None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        headers = self.marks if self.server and url.startswith(self.server) else {}
        try:
            with self.opener.open(
                urllib.request.Request(url, data=data, headers=headers), timeout=self.timeout
            ) as response:
                return response.status, dict(response.headers), response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode("utf-8", "replace")


def is_local(base_url):
    return urllib.parse.urlsplit(base_url).hostname in ("127.0.0.1", "localhost", "::1")


def fake_idp(sim, tenant_id, client_id, secret, users):
    """The tenant's IdP for this run: the app's credentials, the authorised users and an outsider."""
    known = {
        u["userName"]: {"name": u["name"], "tenant": tenant_id, "organizationCode": u["orgCode"], "role": u["role"]}
        for u in users
    }
    known[OUTSIDER] = {"name": "Outsider", "tenant": tenant_id, "organizationCode": "sim-d1", "role": "user"}
    clients = {client_id: {"secret": secret, "redirect_uris": [sim.base + "/login/callback"]}}
    return Running(create_fake_idp(clients, known, password=PASSWORD))


def _record(sim, step, expected, got, problems, started):
    sim.steps.append(
        Step(
            sim.scenario,
            step,
            expected,
            got,
            not problems,
            round((time.perf_counter() - started) * 1000, 1),
            "; ".join(problems),
        )
    )


NO_LOOPBACK_IDP = (
    "the server refuses a tenant IdP on this host (LOGIN_ALLOW_LOOPBACK_IDP is off, as it must be in "
    "production), and this suite plays the IdP here. To try the buyer's login on this host, start the "
    'server with ISVAPP_LOGIN_ALLOW_LOOPBACK_IDP=true (README, "Trying the login on this host").'
)


class IdpRefused(Exception):
    """The server will not send a browser to the simulator's IdP: the login cannot be played here."""


def log_in(sim, idp_url, tenant_code, user):
    """One login from the login URL to the page isvapp answers: (HTTP status, page)."""
    browser = Browser(sim.timeout, sim.marks, sim.base)
    status, headers, page = browser.open(f"{sim.base}/login/{urllib.parse.quote(tenant_code)}")
    if status == 502 and 'data-reason="idp_not_allowed"' in page:
        raise IdpRefused()
    location = headers.get("Location", "")
    if status != 302 or not location.startswith(idp_url + "/api/v1/oauth2/authorize?"):
        return status, f"the login URL did not send the browser to the tenant's IdP (HTTP {status}, {location[:80]})"
    status, _, form_page = browser.open(location)
    fields = dict(re.findall(r"name='([^']+)' value='([^']*)'", form_page))
    status, headers, _ = browser.open(location.split("?")[0], {**fields, "userName": user, "password": PASSWORD})
    back = headers.get("Location", "")
    if status != 302 or "code=" not in back:
        return status, f"the IdP did not send the browser back with a code (HTTP {status})"
    status, _, page = browser.open(back)
    return status, page


def account_login(sim, idp_url, tenant_code, app_id, user):
    """The admitted user's login: the hand-off (an assertion verified with the server's key set)
    or the signed-in page; then the outsider's, which must be refused with its reason."""
    started = time.perf_counter()
    try:
        status, page = log_in(sim, idp_url, tenant_code, user)
    except IdpRefused:
        sim.skip("the account login: " + NO_LOOPBACK_IDP)
        return
    problems = [] if status == 200 else [f"HTTP {status}: {page[:160]}"]
    found = re.search(r'name="assertion" value="([^"]+)"', page)
    if not problems and found:
        try:
            keys = jwt.PyJWKClient(sim.base + "/.well-known/jwks.json")
            claims = jwt.decode(
                found.group(1),
                keys.get_signing_key_from_jwt(found.group(1)).key,
                algorithms=["EdDSA"],
                audience=app_id,
                options={"require": ["exp", "jti", "sub"]},
            )
            if claims.get("user", {}).get("userName") != user:
                problems.append(f"the assertion names {claims.get('user')}, not {user}")
        except jwt.PyJWTError as error:
            problems.append(f"the hand-off assertion does not verify: {error}")
    elif not problems and "Signed in" not in page and "已登录" not in page:
        problems.append("neither a hand-off nor the signed-in page")
    _record(sim, "kit account login (authorised user)", "HTTP 200", f"HTTP {status}", problems, started)
    started = time.perf_counter()
    status, page = log_in(sim, idp_url, tenant_code, OUTSIDER)
    refused = status == 403 and 'data-reason="unknown_user"' in page
    _record(
        sim,
        "kit account login refused (user not authorised)",
        "HTTP 403",
        f"HTTP {status}",
        [] if refused else [f"an unauthorised user got HTTP {status}"],
        started,
    )
