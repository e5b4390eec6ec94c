"""The fake IdP's routes: authorize (its login page), token, userinfo and logout, as the pages in
docs/research/issue-24-login-pages.md print them. Thin: the rules are the directory's
(directory.Directory), what is handed out is the state's (state.IdpState); the faults a test asks
for are FAKE_IDP_* settings in the app's config."""

import json
import time
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Response, current_app, request
from markupsafe import escape

from . import bp
from .directory import AUTHORIZE_FIELDS, verifier_matches

AUTHORIZE = "/api/v1/oauth2/authorize"
TOKEN = "/api/v1/oauth2/token"
USERINFO = "/api/v1/oauth2/userinfo"
LOGOUT = "/api/v1/logout"
SESSION_COOKIE = "fake_idp_sid"  # not "session": cookies ignore ports, isvapp on 127.0.0.1 would share it
_FAILURES = {400: "invalid_request", 401: "invalid_client", 403: "access_denied", 429: "too_many_requests"}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def json_answer(status, body, **headers):
    """JSON as the pages print it: one field a line, ``"key" : value``."""
    return Response(
        json.dumps(body, indent=0, separators=(",", " : "), ensure_ascii=False),
        status,
        content_type="application/json;charset=UTF-8",
        headers=headers,
    )


def token_error(status, error, description):
    return json_answer(status, {"error": error, "error_description": description}, **NO_STORE)


def page(status, title, body):
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return Response(html, status, content_type="text/html; charset=utf-8")


def with_query(uri, **params):
    """``uri`` with ``params`` added to the query it has."""
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


def _directory():
    return current_app.extensions["fake_idp_directory"]


def _state():
    return current_app.extensions["fake_idp"]


def _delay():
    if current_app.config["FAKE_IDP_DELAY_S"]:
        time.sleep(current_app.config["FAKE_IDP_DELAY_S"])


@bp.before_app_request
def _record():
    _state().record_call(request.method, request.path)


# --- authorize: the login page --------------------------------------------------------------------


def login_form(q, error=""):
    hidden = "".join(f"<input type='hidden' name='{k}' value='{escape(q[k])}'>" for k in AUTHORIZE_FIELDS)
    note = f"<p class='error' role='alert'>{escape(error)}</p>" if error else ""
    return page(
        200,
        "Fake IdP login",
        f"{note}<form method='post' action='{AUTHORIZE}'>{hidden}"
        "<label>userName <input name='userName' autocomplete='username'></label> "
        "<label>password <input name='password' type='password'></label> "
        "<button type='submit'>Log in</button></form>",
    )


def redirect_with_code(q, user_name):
    code = _state().new_code(q, user_name, current_app.config["FAKE_IDP_CODE_TTL_S"])
    params = {"code": code, **({"state": q["state"]} if q["state"] else {})}
    return Response(
        status=302, headers={"Location": with_query(q["redirect_uri"], **params), "Cache-Control": "no-store"}
    )


@bp.route(AUTHORIZE, methods=["GET", "POST"])
def authorize():
    source = request.args if request.method == "GET" else request.form
    q = {k: source.get(k, "") for k in AUTHORIZE_FIELDS}
    q["scope"] = q["scope"] or "get_user_info"
    directory, state = _directory(), _state()
    problem = directory.authorize_problem(q)
    if problem:
        return page(400, "Bad authorize request", f"<p>{escape(problem)}</p>")
    if request.method == "GET":
        remembered = state.session_user(request.cookies.get(SESSION_COOKIE, ""))
        if remembered in directory.users:
            return redirect_with_code(q, remembered)
        return login_form(q)
    user_name = request.form.get("userName", "")
    if not directory.password_ok(user_name, request.form.get("password", "")):
        return login_form(q, "Wrong userName or password.")
    sid = state.start_session(user_name)
    answer = redirect_with_code(q, user_name)
    answer.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="Lax", path="/")
    return answer


# --- token: code or refresh token for an access token ---------------------------------------------


def issue(client_id, user_name, scope):
    config = current_app.config
    access, refresh = _state().issue(
        client_id, user_name, scope, config["FAKE_IDP_TOKEN_TTL_S"], config["FAKE_IDP_REFRESH_TTL_S"]
    )
    return json_answer(
        200,
        {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": config["FAKE_IDP_TOKEN_TTL_S"],
            "scope": scope,
            "refresh_token": refresh,
        },
        **NO_STORE,
    )


@bp.post(TOKEN)
def token():
    _delay()
    config, state = current_app.config, _state()
    with state.lock:
        fail, config["FAKE_IDP_TOKEN_FAIL_NEXT"] = config["FAKE_IDP_TOKEN_FAIL_NEXT"], None
    if fail:
        return token_error(int(fail), _FAILURES.get(int(fail), "server_error"), f"injected HTTP {fail}")
    if config["FAKE_IDP_TOKEN_GARBAGE"]:
        return Response("<html>oops</html>", 200, content_type="text/html")
    if request.mimetype != "application/x-www-form-urlencoded":
        return token_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
    form = request.form
    client_id = form.get("client_id", "")
    if not _directory().client_ok(client_id, form.get("client_secret", "")):
        return token_error(401, "invalid_client", "Bad client credentials")
    grant_type = form.get("grant_type", "")
    if grant_type == "authorization_code":
        grant = state.take("codes", form.get("code", ""), client_id)
        bad = grant is None or ("redirect_uri" in form and form["redirect_uri"] != grant["redirect_uri"])
        if not bad and grant and grant["challenge"]:
            bad = not verifier_matches(form.get("code_verifier", ""), grant["challenge"])
        if bad or grant is None:
            return token_error(400, "invalid_grant", "Invalid authorization code")
        return issue(client_id, grant["user"], grant["scope"])
    if grant_type == "refresh_token":
        grant = state.take("refresh", form.get("refresh_token", ""), client_id)
        if grant is None:
            return token_error(400, "invalid_grant", "Invalid refresh token")
        return issue(client_id, grant["user"], grant["scope"])
    return token_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")


# --- userinfo and logout --------------------------------------------------------------------------


@bp.get(USERINFO)
def userinfo():
    _delay()
    scheme, _, access = request.headers.get("Authorization", "").partition(" ")
    grant = _state().access_grant(access.strip()) if scheme.lower() == "bearer" else None
    user = _directory().users.get(grant["user"]) if grant else None
    if grant is None or user is None:
        return json_answer(
            401,
            {"error": "unauthorized", "error_description": "Full authentication is required to access this resource"},
            **{"WWW-Authenticate": 'Bearer realm="oauth2-resource"'},
        )
    tenant = current_app.config["FAKE_IDP_USERINFO_TENANT"] or user.get("tenant")
    return json_answer(
        200,
        {
            "userName": grant["user"],
            "name": user.get("name"),
            "tenant": tenant,
            "organizationCode": user.get("organizationCode"),
            "role": user.get("role"),
        },
    )


@bp.get(LOGOUT)
def logout():
    _state().end_session(request.cookies.get(SESSION_COOKIE, ""))
    url = request.args.get("redirect_url", "").strip()  # the page's example carries a stray space
    if _directory().safe_redirect(url):
        answer = Response(status=302, headers={"Location": url})
    else:
        answer = page(200, "Logged out", "<p>You are logged out of the fake IdP.</p>")
    answer.delete_cookie(SESSION_COOKIE, path="/")
    return answer
