"""What the fake IdP hands out and remembers: authorization codes, access and refresh tokens, its
own login sessions, and every call (for the tests). Codes and refresh tokens are single use, each
bound to the client it was issued to, and they expire on the monotonic clock. One lock guards it
all: the server answers in threads."""

import secrets
import threading
import time


class IdpState:
    """The fake IdP's memory (``app.extensions["fake_idp"]``)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.codes = {}  # code -> {client_id, redirect_uri, user, scope, challenge, expires}
        self.tokens = {}  # access token -> {client_id, user, scope, expires}
        self.refresh = {}  # refresh token -> {client_id, user, scope, expires}
        self.sessions = {}  # the IdP's session cookie -> userName
        self.calls = []  # (method, path) of every request

    def record_call(self, method, path):
        with self.lock:
            self.calls.append((method, path))

    def new_code(self, q, user_name, ttl_s, now=None):
        """An authorization code for the authorize parameters ``q``, good for ``ttl_s`` seconds."""
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = {
                "client_id": q["client_id"],
                "redirect_uri": q["redirect_uri"],
                "user": user_name,
                "scope": q["scope"],
                "challenge": q["code_challenge"] or None,
                "expires": (now or time.monotonic()) + ttl_s,
            }
        return code

    def issue(self, client_id, user_name, scope, token_ttl_s, refresh_ttl_s, now=None):
        """A new (access token, refresh token) pair."""
        now = now or time.monotonic()
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[access] = {
                "client_id": client_id,
                "user": user_name,
                "scope": scope,
                "expires": now + token_ttl_s,
            }
            self.refresh[refresh] = {
                "client_id": client_id,
                "user": user_name,
                "scope": scope,
                "expires": now + refresh_ttl_s,
            }
        return access, refresh

    def take(self, kind, key, client_id, now=None):
        """The code (``kind`` "codes") or refresh token ("refresh"), removed: single use. None when
        unknown, expired or another client's (another client's is left where it is)."""
        with self.lock:
            grant = getattr(self, kind).get(key)
            if grant is None or grant["client_id"] != client_id:
                return None
            del getattr(self, kind)[key]
        return grant if (now or time.monotonic()) < grant["expires"] else None

    def access_grant(self, access, now=None):
        """The grant behind an access token, or None when unknown or expired."""
        with self.lock:
            grant = self.tokens.get(access)
        return grant if grant and (now or time.monotonic()) < grant["expires"] else None

    def start_session(self, user_name):
        """A new IdP session for the user; returns its cookie's value."""
        sid = secrets.token_urlsafe(24)
        with self.lock:
            self.sessions[sid] = user_name
        return sid

    def session_user(self, sid):
        with self.lock:
            return self.sessions.get(sid)

    def end_session(self, sid):
        with self.lock:
            self.sessions.pop(sid, None)
