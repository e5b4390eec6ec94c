"""The login's routes: thin, each reads the request, calls the domain or the IdP, renders.

The login's own state travels in two cookies signed with SECRET_KEY (itsdangerous, Flask's own
signer):

- ``isvapp_login`` (path /login, at most LOGIN_STATE_TTL_S): the state, the PKCE verifier and
  where the login goes, never in the database, so a visitor who never finishes a login leaves
  nothing behind. It binds the state to this browser; the callback always deletes it, and a
  finished login claims the state in the replay store, so it works once.
- ``isvapp_buyer`` (LOGIN_SESSION_TTL_S): the id of the buyer's session, kept on the server
  (domain.logins) with the IdP's refresh token sealed (vault), for /login/refresh and /logout.
  Logout ends the session on the server: a copy of the cookie is worthless afterwards. No access
  token is kept anywhere.

Every page's Content-Security-Policy names the origins its forms may reach, and no more:
Chromium applies ``form-action`` to a form's redirects too, so a form whose answer redirects to
the tenant's IdP (Sign out) names that IdP's origin, and the chooser, which cannot know the IdP
before the code is typed, answers with a page that continues there itself.
"""

import hashlib
import hmac
import logging
import urllib.parse
from typing import Any

from flask import current_app, g, jsonify, make_response, redirect, render_template, request, url_for
from flask_babel import gettext
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .. import metrics, outbound
from ..dashboard import i18n
from ..domain import handoff, logins, simulation
from ..koo import jose
from ..market import idp
from ..settings import settings_of
from ..storage import vault
from ..storage.keys import signing_key
from . import bp

PENDING_COOKIE = "isvapp_login"
BUYER_COOKIE = "isvapp_buyer"
# What a visitor is shown for these is generic; the details go to the merchant's log.
LOGGED_ONLY = ("idp_error", "idp_failed", "idp_not_allowed", "no_app", "not_configured")
# A refusal about who signed in: the IdP's session would sign the same user straight back in,
# so the page offers to end it and sign in as someone else.
SWITCHABLE = ("tenant_mismatch", "unknown_user", "user_disabled")
log = logging.getLogger("isvapp.login")


def _reasons():
    """The page's wording for each refusal: what happened, and whom to ask."""
    return {
        "unknown_tenant": (
            gettext("This enterprise is not known to this product."),
            gettext("Check the login address with the product's seller."),
        ),
        "no_app": (
            gettext("This product has no login set up for your enterprise yet."),
            gettext("Ask the product's seller."),
        ),
        "tenant_mismatch": (
            gettext("You signed in with an account of another enterprise."),
            gettext("Sign in with your account of this enterprise, or ask your enterprise's administrator."),
        ),
        "unknown_user": (
            gettext("Your account is not authorised to use this product."),
            gettext("Ask your enterprise's administrator to authorise you in KooGallery."),
        ),
        "user_disabled": (
            gettext("Your account is disabled for this product."),
            gettext("Ask your enterprise's administrator."),
        ),
        "no_instance": (
            gettext("Your enterprise has no subscription to this product."),
            gettext("Ask your enterprise's administrator, or the product's seller."),
        ),
        "instance_frozen": (
            gettext("Your enterprise's subscription is frozen."),
            gettext("Ask your enterprise's administrator (KooGallery freezes a subscription that is overdue)."),
        ),
        "instance_expired": (
            gettext("Your enterprise's subscription has expired."),
            gettext("Ask your enterprise's administrator to renew it in KooGallery."),
        ),
        "instance_released": (
            gettext("Your enterprise's subscription has ended."),
            gettext("Ask your enterprise's administrator."),
        ),
        "state_used": (
            gettext("This login has already been used."),
            gettext("Start again from the product's login address."),
        ),
        "no_login": (
            gettext("This login was not started in this browser, or it took too long."),
            gettext("Start again from the product's login address."),
        ),
        "bad_state": (
            gettext("This login does not match the one this browser started."),
            gettext("Start again from the product's login address."),
        ),
        "idp_error": (
            gettext("Your enterprise's sign-in service refused the login."),
            gettext("Try again; if it happens again, ask your enterprise's administrator."),
        ),
        "idp_not_allowed": (
            gettext("Your enterprise's sign-in service is not set up correctly for this product."),
            gettext("Ask the product's seller."),
        ),
        "not_configured": (
            gettext("This product's sign-in is not set up yet."),
            gettext("Ask the product's seller."),
        ),
        "session_ended": (
            gettext("You have signed out, or your session has ended."),
            gettext("Sign in again from the product's login address."),
        ),
        "idp_failed": (
            gettext("Your enterprise's sign-in service did not answer as expected."),
            gettext("Try again in a moment; if it happens again, ask the product's seller."),
        ),
    }


STATUS = {
    "unknown_tenant": 404,
    "no_login": 400,
    "bad_state": 400,
    "state_used": 400,
    "idp_error": 502,
    "idp_failed": 502,
    "idp_not_allowed": 502,
    "not_configured": 503,
    "session_ended": 401,
}


def _policy(*form_origins, forms_here=True):
    """The pages' Content-Security-Policy: nothing from elsewhere, no inline script, and forms
    only to this server (``forms_here``) and the ``form_origins`` named (Chromium checks a
    form's redirects too)."""
    forms = " ".join((*(["'self'"] if forms_here else []), *dict.fromkeys(o for o in form_origins if o)))
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"form-action {forms}; base-uri 'none'; frame-ancestors 'none'"
    )


def _origin(url):
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@bp.before_request
def _language_and_mark():
    i18n.choose()
    simulation.mark()  # the simulator's buyer login counts as simulated, not as the Seller Console's


@bp.after_request
def _headers(response):
    response.headers.setdefault("Content-Security-Policy", _policy())
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # the callback's URL holds the code
    response.headers.setdefault("Cache-Control", "no-store")
    return i18n.remember(response)


@bp.context_processor
def _language_links():
    """The language switch keeps the page, except where the page came out of a one-time step
    (the IdP's callback, a refresh): reloading that would fail, so the switch starts the login
    again, in the other language (the IdP's session makes that one click)."""

    def lang_href(lang):
        if request.endpoint in ("login.callback", "login.refresh"):
            again = g.get("login_again") or url_for("login.choose")
            return again + ("&" if "?" in again else "?") + urllib.parse.urlencode({"lang": lang})
        values: dict[str, Any] = {k: v for k, v in request.args.items() if k != "lang"}
        values.update(request.view_args or {}, lang=lang)
        return url_for(request.endpoint or "login.choose", **values)

    return {"lang_href": lang_href}


def _settings():
    """The login's section of the settings (LOGIN_*)."""
    return settings_of(current_app).login


def _secret():
    return settings_of(current_app).secret_key or ""


def _signer(purpose):
    return URLSafeTimedSerializer(_secret(), salt=f"isvapp buyer {purpose}")


def _redirect_uri():
    return _settings().redirect_uri or url_for("login.callback", _external=True)


def _issuer():
    return _settings().issuer or request.url_root.rstrip("/")


def _idp_base(target):
    return idp.base_url(target.domain_name, allow_loopback=_settings().allow_loopback_idp)


def _client(target, with_secret=True):
    secret = ""
    if with_secret:
        try:
            secret = vault.unseal(_secret(), target.client_secret_sealed) if target.client_secret_sealed else ""
        except Exception:  # noqa: BLE001  sealed under another SECRET_KEY: the app must be synced again
            secret = ""
        if not secret:
            raise logins.Refused("no_app", "no usable clientSecret: applicationSync again")
    return idp.Client(
        _idp_base(target),
        target.client_id,
        secret,
        _redirect_uri(),
        _settings().idp_timeout_s,
        allow_loopback=_settings().allow_loopback_idp,
    )


def _idp_refusal(error):
    """An IdP step that failed, as a refusal: the host not allowed, the IdP's own refusal, or
    anything else it did wrong."""
    if error.kind == "config":
        return logins.Refused("idp_not_allowed", str(error))
    return logins.Refused("idp_error" if error.kind == "refused" else "idp_failed", str(error))


def _switch_url(target):
    """Sign in as someone else: the IdP's logout ends its session, then back to this login."""
    try:
        client = _client(target, with_secret=False)
    except idp.IdpError:
        return None
    again = url_for("login.start", tenant_ref=target.tenant_code or target.tenant_id, app=target.app_id, _external=True)
    return idp.logout_url(client, again)


def _refused(refusal, target=None):
    reason, reasons = refusal.reason, _reasons()
    what, ask = reasons.get(reason, reasons["idp_failed"])
    metrics.buyer_login(reason if reason in reasons else "idp_failed")
    if reason in LOGGED_ONLY:
        log.warning(
            "buyer login refused (%s) for tenant %s: %s", reason, target.tenant_id if target else "-", refusal.detail
        )
    switch = _switch_url(target) if target is not None and reason in SWITCHABLE else None
    response = make_response(
        render_template(
            "login/refused.html",
            what=what,
            ask=ask,
            reason=reason,
            detail="" if reason in LOGGED_ONLY else refusal.detail,
            switch_url=switch,
        ),
        STATUS.get(reason, 403),
    )
    _delete_cookie(response, PENDING_COOKIE, path="/login")
    return response


def _set_cookie(response, name, value, max_age, path="/"):
    response.set_cookie(
        name, value, max_age=max_age, path=path, httponly=True, samesite="Lax", secure=request.is_secure
    )


def _delete_cookie(response, name, path="/"):
    """A deletion carries the same flags as the cookie: scanners read the header, not its meaning."""
    response.delete_cookie(name, path=path, httponly=True, samesite="Lax", secure=request.is_secure)


def _unpinned():
    """LOGIN_ISSUER unset: the assertion's issuer would come from the request's Host header. A
    developer on this host may do that; a login from anywhere else may not (the go-live page says
    what to set)."""
    return not _settings().issuer and not outbound.is_loopback(request.remote_addr)


def _leave_for_idp(tenant_ref, app_id, chooser=False):
    """Leave for the tenant's IdP, with a state (and a PKCE verifier) bound to this browser.

    ``chooser``: the enterprise's code came from the chooser's form. Its page cannot name the
    IdP's origin in its policy before the code is typed, and Chromium blocks a form whose answer
    redirects elsewhere, so this answers with a page that continues to the IdP by itself."""
    target = None
    try:
        if _unpinned():
            raise logins.Refused("not_configured", "LOGIN_ISSUER is not set: set it to this server's public base URL")
        target = logins.find_target(tenant_ref, app_id)
        client = _client(target)
    except logins.Refused as refusal:
        return _refused(refusal, target)
    except idp.IdpError as error:
        return _refused(_idp_refusal(error), target)
    state = idp.new_verifier()
    verifier = idp.new_verifier() if _settings().pkce else None
    there = idp.authorize_url(client, state, verifier)
    response = make_response(render_template("login/leaving.html", there=there)) if chooser else redirect(there)
    pending = _signer("login").dumps(
        {"s": state, "v": verifier, "t": tenant_ref, "a": target.app_id, "i": target.instance_id}
    )
    _set_cookie(response, PENDING_COOKIE, pending, _settings().state_ttl_s, path="/login")
    return response


@bp.route("/login")
def choose():
    tenant = (request.args.get("tenant") or "").strip()
    if tenant:
        return _leave_for_idp(tenant, request.args.get("app"), chooser=True)
    return render_template("login/choose.html")


@bp.route("/login/<tenant_ref>")
def start(tenant_ref):
    return _leave_for_idp(tenant_ref, request.args.get("app"))


def _pending():
    try:
        pending = _signer("login").loads(request.cookies.get(PENDING_COOKIE, ""), max_age=_settings().state_ttl_s)
    except (BadSignature, SignatureExpired):
        raise logins.Refused("no_login") from None
    sent = request.args.get("state") or ""
    if not isinstance(pending, dict) or not hmac.compare_digest(sent.encode(), str(pending.get("s")).encode()):
        raise logins.Refused("bad_state")
    return pending


def _logout_token(session_id):
    """The token Sign out's form carries: only a page of this session can post it."""
    return hmac.new(_secret().encode(), b"isvapp buyer logout " + session_id.encode(), hashlib.sha256).hexdigest()


def _hand_off(target, facts, session_id):
    """Send an admitted user on: the assertion, and the buyer cookie for later."""
    metrics.buyer_login("admitted")
    assertion = handoff.sign_assertion(
        signing_key(_settings().signing_key), issuer=_issuer(), audience=target.app_id, **facts
    )
    destination = target.handoff_url or _settings().handoff_url
    if destination and outbound.is_https_or_loopback(destination):
        response = make_response(
            render_template("login/handoff.html", destination=destination, assertion=assertion, facts=facts)
        )
        response.headers["Content-Security-Policy"] = _policy(_origin(destination), forms_here=False)
    else:
        response = make_response(
            render_template("login/signed_in.html", facts=facts, logout_token=_logout_token(session_id))
        )
        response.headers["Content-Security-Policy"] = _policy(_idp_origin(target))
    _set_cookie(response, BUYER_COOKIE, _signer("session").dumps({"s": session_id}), _settings().session_ttl_s)
    return response


def _idp_origin(target):
    try:
        return _idp_base(target)
    except idp.IdpError:
        return None


@bp.route("/login/callback")
def callback():
    """Back from the IdP: the code for tokens, the user info, who may come in, the hand-off.

    A login the aPaaS enterprise workbench began (the user clicked the app there) arrives with
    ``code`` and ``tenant_id`` and no state of ours: accepted only with LOGIN_WORKBENCH on, and
    then its code, not a state, is what is claimed once."""
    target = None
    try:
        workbench = _workbench_login()
        pending = workbench or _pending()
        if request.args.get("error"):
            raise idp.IdpError(
                "refused",
                f"{request.args['error'][:100]}: {request.args.get('error_description', '')[:200]}",
            )
        code = request.args.get("code")
        if not code:
            raise idp.IdpError("garbage", "the IdP came back without a code")
        target = logins.find_target(pending["t"], pending["a"], pending.get("i"))
        g.login_again = url_for("login.start", tenant_ref=pending["t"], app=target.app_id)
        sent_tenant = request.args.get("tenant_id")  # the aPaaS workbench names the tenant too
        if sent_tenant and sent_tenant != target.tenant_id:
            raise logins.Refused("tenant_mismatch", f"the callback names tenant {sent_tenant!r}")
        client = _client(target)
        tokens = idp.exchange_code(client, code, pending.get("v"))
        user = idp.user_info(client, tokens["access_token"])
        facts = logins.admit(target, user)  # refused before the state is spent: nothing is stored for them
        once = ("code " + code) if workbench else pending["s"]
        refresh = tokens.get("refresh_token")
        session_id = logins.record_login(
            target,
            user["userName"],
            hashlib.sha256(once.encode()).hexdigest(),
            vault.seal(_secret(), refresh) if refresh else None,
            _settings().session_ttl_s,
        )
        response = _hand_off(target, facts, session_id)
    except logins.Refused as refusal:
        return _refused(refusal, target)
    except idp.IdpError as error:
        return _refused(_idp_refusal(error), target)
    _delete_cookie(response, PENDING_COOKIE, path="/login")
    return response


def _workbench_login():
    """The workbench's login as a pending one (no state, no verifier), or None."""
    if not _settings().workbench or request.args.get("state") or not request.args.get("tenant_id"):
        return None
    return {"t": request.args["tenant_id"], "a": request.args.get("app_id") or None, "v": None}


def _session_id():
    """The session id the buyer cookie carries (signed by us), or None."""
    try:
        buyer = _signer("session").loads(request.cookies.get(BUYER_COOKIE, ""), max_age=_settings().session_ttl_s)
    except (BadSignature, SignatureExpired):
        return None
    found = buyer.get("s") if isinstance(buyer, dict) else None
    return found if isinstance(found, str) else None


def _session_target(session):
    return logins.find_target(session.tenant_id, session.app_id, session.instance_key)


@bp.route("/login/refresh")
def refresh():
    """A new hand-off with the entitlement as it is now, from the kept refresh token: for the
    merchant's product when its own session ends. Without a session, the full login; a session
    logout ended (or past its end) is refused."""
    session_id = _session_id()
    if not session_id:
        return redirect(url_for("login.choose"))
    session = logins.session_of(session_id)
    if session is None:
        response = _refused(logins.Refused("session_ended"))
        _delete_cookie(response, BUYER_COOKIE, path="/")
        return response
    target = None
    g.login_again = url_for("login.start", tenant_ref=session.tenant_id, app=session.app_id)
    try:
        target = _session_target(session)
        if not session.refresh_sealed:
            raise idp.IdpError("refused", "no refresh token kept")
        client = _client(target)
        kept = vault.unseal(_secret(), session.refresh_sealed)
        tokens = idp.refresh(client, kept)
        facts = logins.admit(target, idp.user_info(client, tokens["access_token"]))
        if tokens.get("refresh_token") and tokens["refresh_token"] != kept:
            logins.keep_refresh_token(session.id, vault.seal(_secret(), tokens["refresh_token"]))
        return _hand_off(target, facts, session_id)
    except logins.Refused as refusal:
        return _refused(refusal, target)
    except idp.IdpError:
        return redirect(url_for("login.start", tenant_ref=session.tenant_id, app=session.app_id))


@bp.get("/logout")
def confirm_logout():
    """A link can only show the button: signing out is a POST with this session's token, so
    another site cannot sign a buyer out."""
    session_id = _session_id()
    session = logins.session_of(session_id) if session_id else None
    if session is None:  # nothing to sign out of: a stale cookie is dropped
        response = make_response(render_template("login/logged_out.html"))
        _delete_cookie(response, BUYER_COOKIE, path="/")
        return response
    response = make_response(render_template("login/logout.html", logout_token=_logout_token(session_id)))
    try:
        response.headers["Content-Security-Policy"] = _policy(_idp_origin(_session_target(session)))
    except logins.Refused:
        pass
    return response


@bp.post("/logout")
def logout():
    """End the buyer's session here (and so the cookie's every copy), then the IdP's own
    session (OneAccess's logout)."""
    session_id = _session_id()
    done = url_for("login.logged_out", _external=True)
    if not session_id:
        return redirect(done, 303)
    if not hmac.compare_digest(request.form.get("token", "").encode(), _logout_token(session_id).encode()):
        return render_template("login/logout.html", logout_token=None), 400
    session = logins.session_of(session_id)
    logins.end_session(session_id)
    response = redirect(done, 303)
    if session is not None:
        try:
            client = _client(_session_target(session), with_secret=False)
            response = redirect(idp.logout_url(client, done), 303)
        except (logins.Refused, idp.IdpError):
            pass
    _delete_cookie(response, BUYER_COOKIE, path="/")
    return response


@bp.route("/login/logged-out")
def logged_out():
    return render_template("login/logged_out.html")


@bp.route("/.well-known/jwks.json")
def jwks():
    """The public key set that verifies the hand-off assertions (docs/handoff.md)."""
    response = jsonify(jose.jwks(signing_key(_settings().signing_key)))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
