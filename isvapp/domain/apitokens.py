"""The API's bearer tokens, with what each is for: its scopes (reading entitlements, recording
usage) and the product or key whose instances it covers (issue 33, review point 5).

A token is made on the pages, shown once, and kept only as SHA-256 (a 256-bit random token needs
no slow hash: nobody can guess one to test against it). ``find`` returns the token's row; the
API asks the row (``ApiToken.allows``) before it answers about an instance or records usage.
"""

import secrets
from datetime import timedelta

from sqlalchemy import select, update

from ..extensions import db
from ..koo.signing import secret_digest
from ..storage.models import ApiToken, TokenScope, utcnow
from ..storage.transactions import write_transaction

TOKEN_PREFIX = "isvapp_"
USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per token

ALL_SCOPES = TokenScope.ALL
SCOPE_WORDS = {TokenScope.ENTITLEMENTS: "reading entitlements", TokenScope.USAGE: "recording usage"}


class TokenProblem(ValueError):
    """Why a token was not made: ``kind`` ("scope", "bound", "product", "key") for the pages to
    say in the merchant's language, the message in English for logs and commands."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def create_token(name, scopes, product_id=None, key_fingerprint=None, keys=None):
    """A new token named ``name`` for ``scopes``, for the instances of ``product_id``, of the key
    whose fingerprint is ``key_fingerprint`` (one of ``keys``, the configured keys'), or both:
    returned once, never stored. One of the two is required: a token covers one product or key."""
    chosen = [s for s in TokenScope.ALL if s in set(scopes or ())]
    if not chosen:
        raise TokenProblem("scope", "choose what the token is for: reading entitlements, recording usage, or both")
    product_id, key_fingerprint = (product_id or "").strip() or None, (key_fingerprint or "").strip() or None
    if product_id is None and key_fingerprint is None:
        raise TokenProblem("bound", "choose the product (its productId) or the key whose instances the token covers")
    if product_id is not None and len(product_id) > 64:
        raise TokenProblem("product", "a productId has at most 64 characters")
    if key_fingerprint is not None and key_fingerprint not in (keys or ()):
        raise TokenProblem("key", f"{key_fingerprint[:40]} is not one of this server's keys (KOO_ACCESS_KEY)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write_transaction():
        db.session.add(
            ApiToken(
                name=(name or "").strip()[:100] or "token",
                digest=secret_digest(token),
                hint=token[: len(TOKEN_PREFIX) + 4],
                scopes=",".join(chosen),
                product_id=product_id,
                key_fingerprint=key_fingerprint,
            )
        )
    return token


def find(token):
    """The token's row (detached, read-only) if it was made here and is not revoked, else None;
    its use is noted at most once a minute."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = db.session.execute(
        select(ApiToken).where(ApiToken.digest == secret_digest(token), ApiToken.revoked_at.is_(None))
    ).scalar_one_or_none()
    if row is not None:
        db.session.expunge(row)
    db.session.rollback()
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > USED_EVERY:
        with write_transaction(durable=False):
            db.session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    return row


def revoke_token(token_id):
    with write_transaction():
        db.session.execute(
            update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow())
        )


def tokens():
    return db.session.execute(select(ApiToken).order_by(ApiToken.id.desc())).scalars().all()
