"""Offline-verifiable license documents: a JWT, EdDSA over Ed25519 (koo.jose).

The merchant's own software checks a license with the public key alone, without calling home,
in whatever language it is written: a standard JWT verifies with a stock library (PyJWT, jose,
nimbus-jose-jwt, golang-jwt), as docs/license-relay.md shows. The payload's facts are claims of
their own (``license``, ``instance``, ``expires`` ...), and the registered claims say the same
for a library that checks them: ``jti`` the license, ``sub`` the instance, ``iat`` issued,
``nbf`` effective and ``exp`` expires, when there are such times.

Documents issued before (``ISVLIC1.<base64url payload>.<base64url sig>``, a format of its own)
still verify here.
"""

import base64
import json
from datetime import datetime

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from . import jose

PREFIX = "ISVLIC1"  # the documents issued before they were JWTs
# payload time -> registered claim, for the libraries that check lifetimes themselves
TIME_CLAIMS = (("issued", "iat"), ("effective", "nbf"), ("expires", "exp"))


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_private_key_pem():
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(pem):
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the license signing key must be an Ed25519 private key")
    return key


def public_key_pem(private_key):
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def _epoch(text):
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def sign_document(private_key, payload):
    """The JWT of ``payload`` (strings, ISO 8601 UTC times), its registered claims added."""
    claims = dict(payload)
    claims.update({claim: _epoch(payload[name]) for name, claim in TIME_CLAIMS if payload.get(name)})
    for name, claim in (("license", "jti"), ("instance", "sub")):
        if payload.get(name):
            claims[claim] = payload[name]
    return jose.sign(private_key, claims)


def _public(public_key):
    if isinstance(public_key, (str, bytes)):
        public_key = serialization.load_pem_public_key(
            public_key.encode("ascii") if isinstance(public_key, str) else public_key
        )
    if not isinstance(public_key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return public_key


def verify_document(public_key, document):
    """The payload of a genuine document; ValueError for anything forged, altered or malformed.

    Only the signature is checked here, not the times: what an expired license still allows is
    the merchant's software's to decide (``expires`` is in the payload)."""
    public_key = _public(public_key)
    text = document.strip()
    if text.startswith(PREFIX + "."):
        return _verify_legacy(public_key, text)
    try:
        return jwt.decode(
            text,
            public_key,
            algorithms=[jose.ALGORITHM],
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False},
        )
    except jwt.InvalidSignatureError:
        raise ValueError("license signature is not valid") from None
    except jwt.PyJWTError:
        raise ValueError("not an isvapp license document") from None


def _verify_legacy(public_key, document):
    """An ``ISVLIC1`` document, issued before license documents were JWTs."""
    try:
        prefix, body, signature = document.split(".")
    except ValueError:
        raise ValueError("not an isvapp license document") from None
    try:
        public_key.verify(_unb64(signature), f"{prefix}.{body}".encode("ascii"))
    except (InvalidSignature, ValueError):
        raise ValueError("license signature is not valid") from None
    return json.loads(_unb64(body))
