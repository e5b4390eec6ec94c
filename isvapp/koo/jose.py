"""The one way isvapp signs a token for someone else to verify: a JWT, EdDSA over Ed25519,
through PyJWT, with a ``kid`` derived from the key itself.

Two documents use it: the buyer's hand-off assertion (domain.handoff) and the license document
(koo.licensedoc). Every maintained JOSE library verifies EdDSA (PyJWT, jose for Node,
nimbus-jose-jwt for Java, golang-jwt for Go), so the merchant's product, in any language, checks
either with a stock library and the public key alone.
"""

import base64
import hashlib
import json

import jwt
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import OKPAlgorithm

ALGORITHM = "EdDSA"


def key_id(private_key):
    """A stable name for the key: the first 16 bytes of the SHA-256 of its raw public key,
    base64url. A verifier that cached the old key set notices a new key by it."""
    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:16]).rstrip(b"=").decode("ascii")


def jwks(private_key):
    """The JWK Set that verifies this key's tokens (public part only)."""
    public = json.loads(OKPAlgorithm.to_jwk(private_key.public_key()))
    return {"keys": [{**public, "kid": key_id(private_key), "use": "sig", "alg": ALGORITHM}]}


def sign(private_key, claims):
    """The compact JWT of ``claims``, signed with ``private_key`` (Ed25519)."""
    return jwt.encode(claims, private_key, algorithm=ALGORITHM, headers={"kid": key_id(private_key), "typ": "JWT"})
