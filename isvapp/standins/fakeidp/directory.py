"""Who the fake IdP knows and its rules about them: the clients (an id, a secret, the redirect
URIs registered for it), the users (their attributes, a password of their own or the shared one),
and what an authorize request, a client's credentials, a PKCE verifier and a logout's redirect
must be. Pure: no Flask, no state."""

import base64
import hashlib
import hmac
import re
from urllib.parse import urlsplit

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


def s256(verifier):
    """The PKCE S256 challenge of a verifier: BASE64URL(SHA-256(ASCII(verifier))) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def verifier_matches(verifier, challenge):
    """RFC 7636: 43 to 128 ASCII characters whose S256 is the challenge the code was asked with."""
    return 43 <= len(verifier) <= 128 and verifier.isascii() and hmac.compare_digest(s256(verifier), challenge)


class Directory:
    """clients: {client_id: {"secret": str, "redirect_uris": [str, ...]}}
    users: {userName: {"name", "tenant", "organizationCode", "role", "password" (optional)}};
    a user without a password of its own logs in with ``password``."""

    def __init__(self, clients, users, password="fake-password"):
        self.clients, self.users, self.password = clients, users, password

    def authorize_problem(self, q):
        """Why these authorize parameters are refused (always on a page: never redirected), or None."""
        client = self.clients.get(q["client_id"])
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

    def password_ok(self, user_name, given):
        """Whether ``given`` is the password of the user ``user_name`` (who must exist)."""
        user = self.users.get(user_name)
        expected = (user or {}).get("password") or self.password
        return user is not None and hmac.compare_digest(given.encode(), expected.encode())

    def client_ok(self, client_id, secret):
        """Whether ``secret`` is the secret of the client ``client_id`` (which must have one)."""
        client = self.clients.get(client_id)
        return bool(
            client is not None
            and client.get("secret")
            and hmac.compare_digest(secret.encode(), client["secret"].encode())
        )

    def safe_redirect(self, url):
        """Whether logout may send the browser to ``url``: http(s) to this host or to a host a
        client's redirect URI names, and nothing a browser would read another way."""
        if not url or any(c in url for c in "\\\r\n\t ") or any(ord(c) < 32 for c in url):
            return False
        parts = urlsplit(url)
        allowed = {"127.0.0.1", "localhost"} | {
            urlsplit(u).hostname for c in self.clients.values() for u in c["redirect_uris"]
        }
        return parts.scheme in ("http", "https") and parts.hostname is not None and parts.hostname in allowed
