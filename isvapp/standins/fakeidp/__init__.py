"""A fake tenant identity provider (Huawei OneAccess-style) for the joint-operation (联营) buyer login.

A 联营 buyer logs in to the SaaS product through the tenant's IdP: authorize (a login page that
redirects back with a code), token (code or refresh token for an access token), userinfo, logout.
The real IdP is only reachable with a tenant's test account, so this plays it on loopback for
development and tests, the way ``fakemarket`` plays the marketplace:

    .venv/bin/isvapp fake-idp --port 8901 [--password fake-password]
    # then point the tenant's domainName (the IdP host) at http://127.0.0.1:8901

The command registers every KitApp with a client id (its unsealed secret, one redirect URI:
``LOGIN_REDIRECT_URI`` or http://127.0.0.1:8000/login/callback) and every active KitUser (all
with the one password). Paths, parameters, answers and error bodies follow
docs/research/issue-24-login-pages.md; PKCE (S256) is accepted although the pages never mention
it. ``FAKE_IDP_TOKEN_FAIL_NEXT`` / ``FAKE_IDP_TOKEN_GARBAGE`` / ``FAKE_IDP_DELAY_S`` /
``FAKE_IDP_USERINFO_TENANT`` in its config let tests make it fail, answer nonsense, be slow or
name another tenant. It is not an IdP: it never runs in production.
"""

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from urllib.parse import urlencode, urlsplit, urlunsplit

import click
from flask import Flask, Response, current_app, request
from flask.cli import with_appcontext
from markupsafe import escape
from sqlalchemy import select
from werkzeug.serving import make_server

from ...extensions import db
from ...storage import vault
from ...storage.models import KitApp, KitState, KitUser

AUTHORIZE = "/api/v1/oauth2/authorize"
TOKEN = "/api/v1/oauth2/token"
USERINFO = "/api/v1/oauth2/userinfo"
LOGOUT = "/api/v1/logout"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8000/login/callback"
SESSION_COOKIE = "fake_idp_sid"  # not "session": cookies ignore ports, isvapp on 127.0.0.1 would share it
AUTHORIZE_FIELDS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # BASE64URL(SHA-256(verifier)), unpadded
_FAILURES = {400: "invalid_request", 401: "invalid_client", 403: "access_denied", 429: "too_many_requests"}


def _json(status, body, **headers):
    """JSON as the pages print it: one field a line, ``"key" : value``."""
    return Response(
        json.dumps(body, indent=0, separators=(",", " : "), ensure_ascii=False),
        status,
        content_type="application/json;charset=UTF-8",
        headers=headers,
    )


def _token_error(status, error, description):
    return _json(
        status,
        {"error": error, "error_description": description},
        **{"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def _page(status, title, body):
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return Response(html, status, content_type="text/html; charset=utf-8")


def s256(verifier):
    """The PKCE S256 challenge of a verifier: BASE64URL(SHA-256(ASCII(verifier))) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def _with_query(uri, **params):
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


def create_fake_idp(clients, users, password="fake-password", **config):
    """A Flask app playing the tenant's IdP.

    clients: {client_id: {"secret": str, "redirect_uris": [str, ...]}}
    users: {userName: {"name", "tenant", "organizationCode", "role", "password" (optional)}};
    a user without a password of its own logs in with ``password``.
    """
    app = Flask("isvapp.standins.fakeidp")
    app.config.update(
        FAKE_IDP_CODE_TTL_S=60,
        FAKE_IDP_TOKEN_TTL_S=7200,
        FAKE_IDP_REFRESH_TTL_S=30 * 86400,
        FAKE_IDP_TOKEN_FAIL_NEXT=None,
        FAKE_IDP_TOKEN_GARBAGE=False,
        FAKE_IDP_DELAY_S=0,
        FAKE_IDP_USERINFO_TENANT=None,
        **config,
    )
    app.extensions["fake_idp"] = {
        "codes": {},
        "tokens": {},
        "refresh": {},
        "sessions": {},
        "calls": [],
        "lock": threading.Lock(),
    }
    state = app.extensions["fake_idp"]

    @app.before_request
    def _record():
        with state["lock"]:
            state["calls"].append((request.method, request.path))

    def _delay():
        if current_app.config["FAKE_IDP_DELAY_S"]:
            time.sleep(current_app.config["FAKE_IDP_DELAY_S"])

    # --- authorize: the login page --------------------------------------------------------------

    def _authorize_problem(q):
        """Why these authorize parameters are refused (always on a page: never redirected), or None."""
        client = clients.get(q["client_id"])
        if client is None:
            return "unknown client_id"
        if q["redirect_uri"] not in client["redirect_uris"]:
            return "redirect_uri is not one registered for this client"
        if q["response_type"] != "code":
            return "response_type must be code"
        if q["code_challenge"] or q["code_challenge_method"]:
            if q["code_challenge_method"] != "S256":
                return "code_challenge_method must be S256"
            if not _CHALLENGE.fullmatch(q["code_challenge"]):
                return "code_challenge must be 43 base64url characters"
        return None

    def _login_form(q, error=""):
        hidden = "".join(f"<input type='hidden' name='{k}' value='{escape(q[k])}'>" for k in AUTHORIZE_FIELDS)
        note = f"<p class='error' role='alert'>{escape(error)}</p>" if error else ""
        return _page(
            200,
            "Fake IdP login",
            f"{note}<form method='post' action='{AUTHORIZE}'>{hidden}"
            "<label>userName <input name='userName' autocomplete='username'></label> "
            "<label>password <input name='password' type='password'></label> "
            "<button type='submit'>Log in</button></form>",
        )

    def _redirect_with_code(q, user_name):
        code = secrets.token_urlsafe(24)
        with state["lock"]:
            state["codes"][code] = {
                "client_id": q["client_id"],
                "redirect_uri": q["redirect_uri"],
                "user": user_name,
                "scope": q["scope"],
                "challenge": q["code_challenge"] or None,
                "expires": time.monotonic() + current_app.config["FAKE_IDP_CODE_TTL_S"],
            }
        params = {"code": code, **({"state": q["state"]} if q["state"] else {})}
        return Response(
            status=302, headers={"Location": _with_query(q["redirect_uri"], **params), "Cache-Control": "no-store"}
        )

    @app.route(AUTHORIZE, methods=["GET", "POST"])
    def authorize():
        source = request.args if request.method == "GET" else request.form
        q = {k: source.get(k, "") for k in AUTHORIZE_FIELDS}
        q["scope"] = q["scope"] or "get_user_info"
        problem = _authorize_problem(q)
        if problem:
            return _page(400, "Bad authorize request", f"<p>{escape(problem)}</p>")
        if request.method == "GET":
            with state["lock"]:
                remembered = state["sessions"].get(request.cookies.get(SESSION_COOKIE, ""))
            if remembered in users:
                return _redirect_with_code(q, remembered)
            return _login_form(q)
        user_name = request.form.get("userName", "")
        user = users.get(user_name)
        expected = (user or {}).get("password") or password
        if user is None or not hmac.compare_digest(request.form.get("password", "").encode(), expected.encode()):
            return _login_form(q, "Wrong userName or password.")
        sid = secrets.token_urlsafe(24)
        with state["lock"]:
            state["sessions"][sid] = user_name
        answer = _redirect_with_code(q, user_name)
        answer.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="Lax", path="/")
        return answer

    # --- token: code or refresh token for an access token ----------------------------------------

    def _issue(client_id, user_name, scope):
        cfg, now = current_app.config, time.monotonic()
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with state["lock"]:
            state["tokens"][access] = {
                "client_id": client_id,
                "user": user_name,
                "scope": scope,
                "expires": now + cfg["FAKE_IDP_TOKEN_TTL_S"],
            }
            state["refresh"][refresh] = {
                "client_id": client_id,
                "user": user_name,
                "scope": scope,
                "expires": now + cfg["FAKE_IDP_REFRESH_TTL_S"],
            }
        return _json(
            200,
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": cfg["FAKE_IDP_TOKEN_TTL_S"],
                "scope": scope,
                "refresh_token": refresh,
            },
            **{"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def _take(kind, key, client_id):
        """The code or refresh token, removed (single use); None when unknown, expired or another client's."""
        with state["lock"]:
            grant = state[kind].get(key)
            if grant is None or grant["client_id"] != client_id:
                return None
            del state[kind][key]
        return grant if time.monotonic() < grant["expires"] else None

    @app.post(TOKEN)
    def token():
        _delay()
        with state["lock"]:
            fail, current_app.config["FAKE_IDP_TOKEN_FAIL_NEXT"] = current_app.config["FAKE_IDP_TOKEN_FAIL_NEXT"], None
        if fail:
            return _token_error(int(fail), _FAILURES.get(int(fail), "server_error"), f"injected HTTP {fail}")
        if current_app.config["FAKE_IDP_TOKEN_GARBAGE"]:
            return Response("<html>oops</html>", 200, content_type="text/html")
        if request.mimetype != "application/x-www-form-urlencoded":
            return _token_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        form = request.form
        client_id, client = form.get("client_id", ""), clients.get(form.get("client_id", ""))
        if (
            client is None
            or not client.get("secret")
            or not hmac.compare_digest(form.get("client_secret", "").encode(), client["secret"].encode())
        ):
            return _token_error(401, "invalid_client", "Bad client credentials")
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            grant = _take("codes", form.get("code", ""), client_id)
            bad = grant is None or ("redirect_uri" in form and form["redirect_uri"] != grant["redirect_uri"])
            if not bad and grant and grant["challenge"]:
                verifier = form.get("code_verifier", "")
                bad = not (
                    43 <= len(verifier) <= 128
                    and verifier.isascii()
                    and hmac.compare_digest(s256(verifier), grant["challenge"])
                )
            if bad or grant is None:
                return _token_error(400, "invalid_grant", "Invalid authorization code")
            return _issue(client_id, grant["user"], grant["scope"])
        if grant_type == "refresh_token":
            grant = _take("refresh", form.get("refresh_token", ""), client_id)
            if grant is None:
                return _token_error(400, "invalid_grant", "Invalid refresh token")
            return _issue(client_id, grant["user"], grant["scope"])
        return _token_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")

    # --- userinfo and logout ---------------------------------------------------------------------

    @app.get(USERINFO)
    def userinfo():
        _delay()
        scheme, _, access = request.headers.get("Authorization", "").partition(" ")
        with state["lock"]:
            grant = state["tokens"].get(access.strip()) if scheme.lower() == "bearer" else None
        user = users.get(grant["user"]) if grant and time.monotonic() < grant["expires"] else None
        if grant is None or user is None:
            return _json(
                401,
                {
                    "error": "unauthorized",
                    "error_description": "Full authentication is required to access this resource",
                },
                **{"WWW-Authenticate": 'Bearer realm="oauth2-resource"'},
            )
        tenant = current_app.config["FAKE_IDP_USERINFO_TENANT"] or user.get("tenant")
        return _json(
            200,
            {
                "userName": grant["user"],
                "name": user.get("name"),
                "tenant": tenant,
                "organizationCode": user.get("organizationCode"),
                "role": user.get("role"),
            },
        )

    def _safe_redirect(url):
        if not url or any(c in url for c in "\\\r\n\t ") or any(ord(c) < 32 for c in url):
            return False
        parts = urlsplit(url)
        allowed = {"127.0.0.1", "localhost"} | {
            urlsplit(u).hostname for c in clients.values() for u in c["redirect_uris"]
        }
        return parts.scheme in ("http", "https") and parts.hostname is not None and parts.hostname in allowed

    @app.get(LOGOUT)
    def logout():
        with state["lock"]:
            state["sessions"].pop(request.cookies.get(SESSION_COOKIE, ""), None)
        url = request.args.get("redirect_url", "").strip()  # the page's example carries a stray space
        if _safe_redirect(url):
            answer = Response(status=302, headers={"Location": url})
        else:
            answer = _page(200, "Logged out", "<p>You are logged out of the fake IdP.</p>")
        answer.delete_cookie(SESSION_COOKIE, path="/")
        return answer

    return app


def clients_and_users():
    """What ``isvapp fake-idp`` registers, read from the database (in an app context).

    Clients: every KitApp with a client id and a sealed secret (later rows win on a shared client
    id). Users: every ACTIVE KitUser (later rows win on a shared userName).
    """
    cfg = current_app.config
    redirect_uris = [cfg.get("LOGIN_REDIRECT_URI") or DEFAULT_REDIRECT_URI]
    clients = {}
    for row in db.session.execute(select(KitApp).where(KitApp.client_id.is_not(None)).order_by(KitApp.id)).scalars():
        if row.client_id and row.client_secret_sealed:
            clients[row.client_id] = {
                "secret": vault.unseal(cfg["SECRET_KEY"], row.client_secret_sealed),
                "redirect_uris": list(redirect_uris),
            }
    users = {}
    for user in db.session.execute(
        select(KitUser).where(KitUser.state == KitState.ACTIVE).order_by(KitUser.id)
    ).scalars():
        users[user.user_name] = {
            "name": user.name,
            "tenant": user.tenant_id,
            "organizationCode": user.org_code,
            "role": user.role or "user",
        }
    return clients, users


@click.command("fake-idp")
@click.option("--port", default=8901, show_default=True)
@click.option("--password", default="fake-password", show_default=True, help="every user's password")
@with_appcontext
def fake_idp_command(port, password):
    """Serve a fake tenant IdP on 127.0.0.1 (authorize, token, userinfo, logout) for development."""
    clients, users = clients_and_users()
    idp = create_fake_idp(clients, users, password=password)
    click.echo(
        f"fake IdP on http://127.0.0.1:{port}: {len(clients)} client(s), {len(users)} user(s), "
        f"redirect URI {next(iter(clients.values()))['redirect_uris'][0] if clients else '-'} (Ctrl-C stops)"
    )
    make_server("127.0.0.1", port, idp, threaded=True).serve_forever()


def init_app(app):
    app.cli.add_command(fake_idp_command)
