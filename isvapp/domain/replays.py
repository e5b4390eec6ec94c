"""The replay store: signed requests seen inside their window, and the answer each one got.

One rule serves both the marketplace's retries and an attacker's replays. A signed request's
identity (:func:`isvapp.koo.signing.replay_token`) is claimed in the same transaction as its
effects, together with its answer. Seen again:
- byte for byte the same request (URL, signature, body: the same fingerprint) is a resend, and
  gets the stored answer again, byte for byte, changing nothing;
- anything else with the same identity, or the same nonce, is a replay, refused with 000001.
Refused requests are not stored: a resend of one is judged afresh.

Read-only activities (queries, checks) claim their identity too, or their nonce could be used
again by a different request. Their answers can carry a buyer's credentials (queryInstance's
appInfo), so those are kept sealed under SECRET_KEY (:func:`sealed`), never in the clear.
"""

from sqlalchemy import or_, select

from ..extensions import db
from ..koo import codes
from ..koo.codes import KooError
from ..storage import vault
from ..storage.models import SignedRequest, utcnow
from ..storage.statements import Write, bind_write, run_bound

SEALED = b"sealed:"  # an answer kept sealed; a plain one is a JSON object, never starting so


def sealed(signed, answer):
    """``answer`` as stored for a read-only request: sealed, as it may carry credentials."""
    return SEALED + vault.seal(signed.settings.secret_key, answer.decode("utf-8")).encode("ascii")


def stored_answer(signed):
    """The stored answer for an identical resend, None for a request not seen; raises for a replay."""
    row = db.session.execute(
        select(SignedRequest.fingerprint, SignedRequest.answer).where(
            SignedRequest.scope == signed.scope,
            or_(SignedRequest.token == signed.token, SignedRequest.nonce == signed.nonce),
        )
    ).first()
    if row is None:
        return None
    if row.fingerprint != signed.fingerprint:
        raise KooError(codes.AUTH_FAILED, "nonce has been used before (replayed request)")
    if row.answer.startswith(SEALED):
        return vault.unseal(signed.settings.secret_key, row.answer[len(SEALED) :].decode("ascii")).encode("utf-8")
    return row.answer


REPLAY_CLAIM = "replay"  # a plan's claim of the request's identity


def claim_write(signed, answer):
    """The claim of the request's identity with its answer, as a write (made before the lock,
    when the answer is known by then); :func:`record` runs it, or a plan does."""
    return Write(
        SignedRequest,
        dict(
            scope=signed.scope,
            token=signed.token,
            nonce=signed.nonce,
            fingerprint=signed.fingerprint,
            answer=answer,
            seen_at=utcnow(),
        ),
        claim=REPLAY_CLAIM,
    )


def record(signed, answer, claim=None):
    """Claim the request's identity with its answer (``claim``: its :func:`claim_write`); False
    when another worker claimed it first."""
    return run_bound(bind_write(claim or claim_write(signed, answer))) is not None
