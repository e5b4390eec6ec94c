"""The login's routes: thin, each reads the request, calls the domain or the IdP, renders.

The login's own state travels in two cookies signed with SECRET_KEY (itsdangerous, Flask's own
signer), never in the database, so a visitor who never finishes a login leaves nothing behind:

- ``isvapp_login`` (path /login, at most LOGIN_STATE_TTL_S): the state, the PKCE verifier and
  where the login goes. It binds the state to this browser; the callback always deletes it, and
  a finished login claims the state in the replay store, so it works once.
- ``isvapp_buyer`` (12 h): who signed in, and the IdP's refresh token sealed (vault) under
  SECRET_KEY, for /login/refresh and /logout. No access token is kept anywhere.
"""

import hashlib
import hmac
import urllib.parse

from flask import current_app, jsonify, make_response, redirect, render_template, request, url_for
from flask_babel import gettext
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .. import outbound
from ..dashboard import i18n
from ..domain import handoff, logins
from ..market import idp
from ..storage import vault
from ..storage.keys import signing_key
from . import bp

PENDING_COOKIE = "isvapp_login"
BUYER_COOKIE = "isvapp_buyer"
BUYER_TTL_S = 12 * 3600


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
}


@bp.before_request
def _language():
    i18n.choose()


@bp.after_request
def _headers(response):
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; "
        "style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'",
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # the callback's URL holds the code
    response.headers.setdefault("Cache-Control", "no-store")
    return i18n.remember(response)


def _settings():
    return current_app.extensions["isvapp_login"]


def _secret():
    return current_app.extensions["isvapp"].secret_key or ""


def _signer(purpose):
    return URLSafeTimedSerializer(_secret(), salt=f"isvapp buyer {purpose}")


def _redirect_uri():
    return _settings().redirect_uri or url_for("login.callback", _external=True)


def _issuer():
    return _settings().issuer or request.url_root.rstrip("/")


def _client(target):
    try:
        secret = vault.unseal(_secret(), target.client_secret_sealed) if target.client_secret_sealed else ""
    except Exception:  # noqa: BLE001  sealed under another SECRET_KEY: the app must be synced again
        secret = ""
    if not secret:
        raise logins.Refused("no_app", "no usable clientSecret: applicationSync again")
    return idp.Client(
        idp.base_url(target.domain_name), target.client_id, secret, _redirect_uri(), _settings().idp_timeout_s
    )


def _refused(reason, detail=""):
    what, ask = _reasons().get(reason, _reasons()["idp_failed"])
    response = make_response(
        render_template("login/refused.html", what=what, ask=ask, reason=reason, detail=detail), STATUS.get(reason, 403)
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


@bp.route("/login")
def choose():
    tenant = (request.args.get("tenant") or "").strip()
    if tenant:
        return start(tenant)
    return render_template("login/choose.html")


@bp.route("/login/<tenant_ref>")
def start(tenant_ref):
    """Leave for the tenant's IdP, with a state (and a PKCE verifier) bound to this browser."""
    try:
        target = logins.find_target(tenant_ref, request.args.get("app"))
        client = _client(target)
    except logins.Refused as refusal:
        return _refused(refusal.reason, refusal.detail)
    except idp.IdpError as error:
        return _refused("idp_failed", str(error))
    state = idp.new_verifier()
    verifier = idp.new_verifier() if _settings().pkce else None
    response = redirect(idp.authorize_url(client, state, verifier))
    pending = _signer("login").dumps({"s": state, "v": verifier, "t": tenant_ref, "a": target.app_id})
    _set_cookie(response, PENDING_COOKIE, pending, _settings().state_ttl_s, path="/login")
    return response


def _pending():
    try:
        pending = _signer("login").loads(request.cookies.get(PENDING_COOKIE, ""), max_age=_settings().state_ttl_s)
    except (BadSignature, SignatureExpired):
        raise logins.Refused("no_login") from None
    sent = request.args.get("state") or ""
    if not isinstance(pending, dict) or not hmac.compare_digest(sent.encode(), str(pending.get("s")).encode()):
        raise logins.Refused("bad_state")
    return pending


def _hand_off(target, facts, refresh_token):
    """Send an admitted user on: the assertion, and the buyer cookie for later."""
    assertion = handoff.sign_assertion(
        signing_key(_settings().signing_key), issuer=_issuer(), audience=target.app_id, **facts
    )
    destination = target.handoff_url or _settings().handoff_url
    if destination and outbound.is_https_or_loopback(destination):
        response = make_response(
            render_template("login/handoff.html", destination=destination, assertion=assertion, facts=facts)
        )
        origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(destination))
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'self'; style-src 'self'; form-action {origin}; base-uri 'none'; "
            "frame-ancestors 'none'"
        )
    else:
        response = make_response(render_template("login/signed_in.html", facts=facts))
    buyer = {
        "t": target.tenant_id,
        "a": target.app_id,
        "r": vault.seal(_secret(), refresh_token) if refresh_token else None,
    }
    _set_cookie(response, BUYER_COOKIE, _signer("session").dumps(buyer), BUYER_TTL_S)
    return response


@bp.route("/login/callback")
def callback():
    """Back from the IdP: the code for tokens, the user info, who may come in, the hand-off.

    A login the aPaaS enterprise workbench began (the user clicked the app there) arrives with
    ``code`` and ``tenant_id`` and no state of ours: accepted only with LOGIN_WORKBENCH on, and
    then its code, not a state, is what is claimed once."""
    try:
        workbench = _workbench_login()
        pending = workbench or _pending()
        if request.args.get("error"):
            raise idp.IdpError(
                "refused", f"{request.args['error'][:100]}: {request.args.get('error_description', '')[:200]}"
            )
        code = request.args.get("code")
        if not code:
            raise idp.IdpError("garbage", "the IdP came back without a code")
        target = logins.find_target(pending["t"], pending["a"])
        sent_tenant = request.args.get("tenant_id")  # the aPaaS workbench names the tenant too
        if sent_tenant and sent_tenant != target.tenant_id:
            raise logins.Refused("tenant_mismatch", f"the callback names tenant {sent_tenant!r}")
        client = _client(target)
        tokens = idp.exchange_code(client, code, pending.get("v"))
        user = idp.user_info(client, tokens["access_token"])
        facts = logins.admit(target, user)  # refused before the state is spent: nothing is stored for them
        once = ("code " + code) if workbench else pending["s"]
        logins.record_login(target, user["userName"], hashlib.sha256(once.encode()).hexdigest())
        response = _hand_off(target, facts, tokens.get("refresh_token"))
    except logins.Refused as refusal:
        return _refused(refusal.reason, refusal.detail)
    except idp.IdpError as error:
        return _refused("idp_error" if error.kind == "refused" else "idp_failed", str(error))
    _delete_cookie(response, PENDING_COOKIE, path="/login")
    return response


def _workbench_login():
    """The workbench's login as a pending one (no state, no verifier), or None."""
    if not _settings().workbench or request.args.get("state") or not request.args.get("tenant_id"):
        return None
    return {"t": request.args["tenant_id"], "a": request.args.get("app_id") or None, "v": None}


def _buyer():
    try:
        buyer = _signer("session").loads(request.cookies.get(BUYER_COOKIE, ""), max_age=BUYER_TTL_S)
    except (BadSignature, SignatureExpired):
        return None
    return buyer if isinstance(buyer, dict) else None


@bp.route("/login/refresh")
def refresh():
    """A new hand-off with the entitlement as it is now, from the kept refresh token: for the
    merchant's product when its own session ends. Without one, or refused, the full login."""
    buyer = _buyer()
    if not buyer or not buyer.get("r"):
        return redirect(url_for("login.choose"))
    try:
        target = logins.find_target(buyer["t"], buyer["a"])
        client = _client(target)
        kept = vault.unseal(_secret(), buyer["r"])
        tokens = idp.refresh(client, kept)
        facts = logins.admit(target, idp.user_info(client, tokens["access_token"]))
        return _hand_off(target, facts, tokens.get("refresh_token") or kept)
    except logins.Refused as refusal:
        return _refused(refusal.reason, refusal.detail)
    except idp.IdpError:
        return redirect(url_for("login.start", tenant_ref=buyer["t"], app=buyer["a"]))


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """End isvapp's short session (the buyer cookie), then the IdP's own (OneAccess's logout)."""
    buyer = _buyer()
    done = url_for("login.logged_out", _external=True)
    response = redirect(done)
    if buyer:
        try:
            target = logins.find_target(buyer["t"], buyer["a"])
            response = redirect(
                idp.logout_url(
                    idp.Client(idp.base_url(target.domain_name), target.client_id, "", _redirect_uri()), done
                )
            )
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
    response = jsonify(handoff.jwks(signing_key(_settings().signing_key)))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
