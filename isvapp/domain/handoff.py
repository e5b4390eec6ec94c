"""The hand-off of a signed-in buyer to the merchant's product: a short-lived, single-use JWT.

isvapp is not the merchant's product. After the buyer's login it tells the product who came in
and what they may use, in a form the product checks on its own, in any language, without
calling isvapp back. The browser carries it (an HTML form POST of the field ``assertion``, never
a URL, so it stays out of access logs and Referer headers).

EdDSA over Ed25519 through koo.jose, as the license documents are signed. The public key is
served as a JWK Set at /.well-known/jwks.json; its ``kid`` is derived from the key itself, so a
product that cached the old set notices a new key. Lifetime 60 s at most; ``jti`` makes every
assertion unique, and the documented verification code (docs/handoff.md) refuses one it has
seen, so a copied assertion cannot be used twice.
"""

import time
import uuid

from ..koo.jose import sign

LIFETIME_S = 60


def sign_assertion(private_key, *, issuer, audience, tenant, user, instance, now=None, lifetime_s=LIFETIME_S):
    """The compact JWT for one login. ``tenant``, ``user`` and ``instance`` are plain dicts of
    strings (docs/handoff.md lists their fields); ``audience`` is the app's appId."""
    if not 0 < lifetime_s <= LIFETIME_S:
        raise ValueError(f"an assertion lives at most {LIFETIME_S} s")
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": f"{tenant['id']}/{user['userName']}",
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime_s,
        "jti": uuid.uuid4().hex,
        "tenant": tenant,
        "user": user,
        "instance": instance,
    }
    return sign(private_key, claims)
