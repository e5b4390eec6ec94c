"""Login, sessions, CSRF and headers for the merchant's pages.

Sessions are Flask's signed cookies, bound to the admin's ``session_version``: a password reset
or a logout ends every session of that admin on the server, so a cookie copied before a logout
is worthless after it. A session also ends SESSION_IDLE_MIN minutes after the last page opened,
and PERMANENT_SESSION_LIFETIME after its login whatever happened since: both moments are kept
in the signed cookie itself, because re-signing it (to note the activity) renews the cookie's own
timestamp, so Flask's max-age check alone would let an active session live for ever. Sessions
are rebuilt at login (no fixation: nothing from before the login
survives). CSRF: a random token in the session, required on every POST of these pages.

Failed logins are counted in the database, so every worker and host sees them:
- per (address, name) and per address, a hard lock for LOGIN_WINDOW: one address can neither
  guess one name for long nor try many names;
- per name across all addresses, a growing delay rather than a lock: after NAME_FREE_FAILURES
  failures in NAME_WINDOW, each further try for that name must wait NAME_DELAY_BASE_S, doubled
  per failure, up to NAME_DELAY_MAX_S, since the name's last failure. A stranger rotating
  addresses gets a few guesses an hour; the merchant, who knows the password, waits minutes at
  worst, and is never locked out for good.
Attempts refused by either rule are not counted (they would extend the wait for ever). An
attempt is counted before its password is checked, under serialise("login") in one write
transaction, so parallel guesses cannot all pass the limit before any is counted; a success
removes its own count. The answer is one generic message whatever went wrong. The password hash
(scrypt, ~100 ms) is checked outside any write transaction, so logins never hold the write lock
the marketplace's callbacks need.
"""

import hmac
import secrets
import time
from datetime import timedelta
from functools import wraps

import click
from flask import abort, current_app, g, redirect, request, session, url_for
from flask.cli import with_appcontext
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import delete, func, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from ..domain.callbacklog import is_marketplace_path
from ..extensions import db
from ..settings import settings_of
from ..storage.models import AdminUser, LoginAttempt, utcnow
from ..storage.transactions import serialise, write_transaction
from ..throttle import once

LOGIN_WINDOW = timedelta(minutes=15)
MAX_FAILURES = 5  # per (address, name) in LOGIN_WINDOW
MAX_ADDRESS_FAILURES = 20  # per address, whatever the names, in LOGIN_WINDOW
NAME_WINDOW = timedelta(hours=24)
NAME_FREE_FAILURES = 10  # per name, all addresses, in NAME_WINDOW, before the delay starts
NAME_DELAY_BASE_S = 2
NAME_DELAY_MAX_S = 600
# Pages only: no inline script or style, nothing from elsewhere, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PASSWORD_METHOD = "scrypt"


class SessionInterface(SecureCookieSessionInterface):
    """Secure cookies whenever the request came over https (directly or via the proxy's header)."""

    def get_cookie_secure(self, app):
        return settings_of(app).pages.cookie_secure or request.is_secure

    def open_session(self, app, request):
        """The marketplace's calls carry no session: none is opened for them (opening one builds a
        signing serializer, measurable on the write path, issue 17)."""
        if is_marketplace_path(request.path):
            return self.make_null_session(app)
        return super().open_session(app, request)


def set_password(name, password):
    with write_transaction():
        user = db.session.execute(select(AdminUser).where(AdminUser.name == name)).scalar_one_or_none()
        hashed = generate_password_hash(password, method=PASSWORD_METHOD)
        if user is None:
            db.session.add(AdminUser(name=name, password_hash=hashed))
            return "created"
        user.password_hash, user.updated_at = hashed, utcnow()
        user.session_version += 1
        return "reset"


def name_delay_s(failures):
    """How long a name must rest after its last failure, given its failures in NAME_WINDOW."""
    if failures < NAME_FREE_FAILURES:
        return 0.0
    return float(min(NAME_DELAY_MAX_S, NAME_DELAY_BASE_S * 2 ** (failures - NAME_FREE_FAILURES)))


def _throttled(name, addr, now):
    """True when this attempt may not be checked: the address's lock, or the name's delay."""
    since = now - LOGIN_WINDOW
    failures = lambda *where: db.session.execute(
        select(func.count())
        .select_from(LoginAttempt)
        .where(  # noqa: E731
            LoginAttempt.at >= since, LoginAttempt.remote_addr == addr, *where
        )
    ).scalar_one()
    if failures(LoginAttempt.name == name) >= MAX_FAILURES or failures() >= MAX_ADDRESS_FAILURES:
        return True
    count, last = db.session.execute(
        select(func.count(), func.max(LoginAttempt.at)).where(
            LoginAttempt.name == name, LoginAttempt.at >= now - NAME_WINDOW
        )
    ).one()
    return last is not None and (now - last).total_seconds() < name_delay_s(count)


def _count_attempt(name, addr, now):
    """Count this attempt as a failure before its password is checked; None when throttled."""
    with write_transaction():
        serialise("login")
        if _throttled(name, addr, now):
            return None
        attempt = LoginAttempt(remote_addr=addr, name=name, at=now)
        db.session.add(attempt)
        db.session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - NAME_WINDOW))
        db.session.flush()
        return attempt.id


def authenticate(name, password):
    """The admin, or None (wrong name, wrong password, or too many recent failures: all alike)."""
    name, addr, now = (name or "")[:64], (request.remote_addr or "")[:64], utcnow()
    attempt = _count_attempt(name, addr, now)
    user = db.session.execute(select(AdminUser).where(AdminUser.name == name)).scalar_one_or_none()
    found = (user.id, user.session_version) if user else None
    stored_hash = user.password_hash if user else _DUMMY_HASH
    db.session.rollback()  # end the read: the hash below takes ~100 ms and must hold no lock
    # Hash even when the name is unknown or the attempt throttled, so timing tells nothing apart.
    good = check_password_hash(stored_hash, password or "")
    if attempt is None or not (found and good):
        return None
    with write_transaction():  # a success is not a failure: its count goes
        db.session.execute(delete(LoginAttempt).where(LoginAttempt.id == attempt))
    return found


_DUMMY_HASH = generate_password_hash("not a password", method=PASSWORD_METHOD)


def log_in(user_id, version):
    session.clear()  # nothing chosen before the login survives it (session fixation)
    now = int(time.time())
    session.update(uid=user_id, ver=version, csrf=secrets.token_urlsafe(32), at=now, seen=now)
    session.permanent = True


SEEN_EVERY_S = 60  # the activity is noted at most once a minute: not a new cookie per page


def _session_alive(now):
    """False once the session passed its idle timeout or its lifetime since the login; notes the
    activity otherwise."""
    idle_s = 60 * settings_of(current_app).pages.session_idle_min
    lifetime_s = current_app.permanent_session_lifetime.total_seconds()
    at, seen = session.get("at"), session.get("seen")
    if not isinstance(at, int) or not isinstance(seen, int) or now - seen > idle_s or now - at > lifetime_s:
        return False
    if now - seen >= SEEN_EVERY_S:
        session["seen"] = int(now)
    return True


def log_out():
    """End every session of this admin on the server (their cookies stop working), then this one."""
    uid = session.get("uid")
    if uid is not None:
        with write_transaction():
            db.session.execute(
                update(AdminUser).where(AdminUser.id == uid).values(session_version=AdminUser.session_version + 1)
            )
    session.clear()


PROXY_WARNING = once()


def warn_about_an_untrusted_proxy():
    """Behind nginx without PROXY_FIX_HOPS every client is 127.0.0.1: login throttling then sees
    one address for everyone. Say so in the log, once per worker."""
    if (
        not settings_of(current_app).ops.proxy_fix_hops
        and request.remote_addr in ("127.0.0.1", "::1")
        and request.headers.get("X-Forwarded-For")
        and PROXY_WARNING.due()
    ):
        current_app.logger.warning(
            "requests come from %s with X-Forwarded-For set, but PROXY_FIX_HOPS is not set: every client "
            "looks like the proxy (login throttling included); set PROXY_FIX_HOPS = 1 behind nginx "
            "(docs/deploy.md)",
            request.remote_addr,
        )


def current_admin():
    """The logged-in admin's name, or None."""
    if "admin" not in g:
        g.admin = None
        uid = session.get("uid")
        if uid is not None and not _session_alive(time.time()):
            session.clear()
            uid = None
        if uid is not None:
            row = db.session.execute(
                select(AdminUser.name, AdminUser.session_version).where(AdminUser.id == uid)
            ).first()
            db.session.rollback()
            if row is not None and row.session_version == session.get("ver"):
                g.admin = row.name
    return g.admin


def login_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if current_admin() is None:
            return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))
        check_csrf()
        return view(*args, **kwargs)

    return wrapped


def csrf_token():
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf():
    if request.method == "POST":
        sent = request.form.get("csrf_token", "").encode("utf-8")
        if not sent or not hmac.compare_digest(sent, session.get("csrf", "").encode("utf-8")):
            abort(400, "the form expired; reload the page and try again")


def secure_headers(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


MIN_PASSWORD_LENGTH = 10


class AdminPassword(click.ParamType):
    """A password of at least MIN_PASSWORD_LENGTH characters. A type, not a check after the
    prompts: click converts the first answer before asking for it again, so a short one is
    refused at once, and the prompt itself states the rule."""

    name = "password"

    def convert(self, value, param, ctx):
        if len(value) < MIN_PASSWORD_LENGTH:
            self.fail(f"use a password of at least {MIN_PASSWORD_LENGTH} characters")
        return value


@click.command("create-admin")
@click.argument("name")
@click.password_option(
    type=AdminPassword(),
    prompt=f"Password (at least {MIN_PASSWORD_LENGTH} characters)",
    help=f"The new password, at least {MIN_PASSWORD_LENGTH} characters (prompted when not given).",
)
@with_appcontext
def create_admin_command(name, password):
    """Create the admin NAME for the pages, or reset its password (which ends its sessions)."""
    click.echo(f"admin {name}: {set_password(name, password)}")


def init_app(app):
    app.session_interface = SessionInterface()
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config["SESSION_COOKIE_SAMESITE"] = settings_of(app).pages.cookie_samesite  # typed: "Lax" unless set
    app.cli.add_command(create_admin_command)
