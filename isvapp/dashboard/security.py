"""Login, sessions, CSRF and headers for the merchant's pages.

Sessions are Flask's signed cookies, bound to the admin's ``session_version`` (a password reset
ends every session) and rebuilt at login (no fixation: nothing from before the login survives).
CSRF: a random token in the session, required on every POST of these pages. Failed logins are
counted in the database per address and per name, so every worker and host sees them, and the
answer is one generic message whatever went wrong.
"""
import hmac
import secrets
from datetime import timedelta
from functools import wraps

import click
from flask import abort, current_app, g, redirect, request, session, url_for
from flask.cli import with_appcontext
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import delete, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from ..db import write_transaction
from ..extensions import db
from ..models import AdminUser, LoginAttempt, utcnow

LOGIN_WINDOW = timedelta(minutes=15)
MAX_FAILURES = 5
# Pages only: no inline script or style, nothing from elsewhere, no framing.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PASSWORD_METHOD = "scrypt"


class SessionInterface(SecureCookieSessionInterface):
    """Secure cookies whenever the request came over https (directly or via the proxy's header)."""

    def get_cookie_secure(self, app):
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


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


def _recent_failures(name, addr, now):
    since = now - LOGIN_WINDOW
    return db.session.execute(select(func.count()).select_from(LoginAttempt).where(
        LoginAttempt.at >= since, (LoginAttempt.remote_addr == addr) | (LoginAttempt.name == name))).scalar_one()


def authenticate(name, password):
    """The admin, or None (wrong name, wrong password, or too many recent failures: all alike)."""
    name, addr, now = (name or "")[:64], (request.remote_addr or "")[:64], utcnow()
    with write_transaction():
        throttled = _recent_failures(name, addr, now) >= MAX_FAILURES
        user = db.session.execute(select(AdminUser).where(AdminUser.name == name)).scalar_one_or_none()
        # Hash even when the name is unknown, so timing does not tell names apart.
        good = check_password_hash(user.password_hash if user else _DUMMY_HASH, password or "")
        if throttled or not (user and good):
            db.session.add(LoginAttempt(remote_addr=addr, name=name, at=now))
            db.session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - 4 * LOGIN_WINDOW))
            return None
        return user.id, user.session_version


_DUMMY_HASH = generate_password_hash("not a password", method=PASSWORD_METHOD)


def log_in(user_id, version):
    session.clear()  # nothing chosen before the login survives it (session fixation)
    session.update(uid=user_id, ver=version, csrf=secrets.token_urlsafe(32))
    session.permanent = True


def current_admin():
    """The logged-in admin's name, or None."""
    if "admin" not in g:
        g.admin = None
        uid = session.get("uid")
        if uid is not None:
            row = db.session.execute(select(AdminUser.name, AdminUser.session_version)
                                     .where(AdminUser.id == uid)).first()
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
        sent = request.form.get("csrf_token", "")
        if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
            abort(400, "the form expired; reload the page and try again")


def secure_headers(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@click.command("create-admin")
@click.argument("name")
@click.password_option(help="The new password (prompted when not given).")
@with_appcontext
def create_admin_command(name, password):
    """Create the admin NAME for the pages, or reset its password (which ends its sessions)."""
    if len(password) < 10:
        raise click.ClickException("use a password of at least 10 characters")
    click.echo(f"admin {name}: {set_password(name, password)}")


def init_app(app):
    app.session_interface = SessionInterface()
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", timedelta(hours=12))
    app.cli.add_command(create_admin_command)
