"""Offline-verifiable license documents: Ed25519 over a small JSON payload.

The merchant's own software checks a license with the public key alone, without calling home,
so the format is deliberately tiny and JWT-like: ``ISVLIC1.<base64url payload>.<base64url sig>``.
The payload is compact JSON with sorted keys, so the same facts always give the same bytes.
"""

import base64
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PREFIX = "ISVLIC1"


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


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


def sign_document(private_key, payload):
    body = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    signed = f"{PREFIX}.{_b64(body)}"
    return f"{signed}.{_b64(private_key.sign(signed.encode('ascii')))}"


def verify_document(public_key, document):
    """The payload of a genuine document; ValueError for anything forged, altered or malformed.

    This is the function a merchant copies into their product (it needs only `cryptography`).
    """
    if isinstance(public_key, (str, bytes)):
        public_key = serialization.load_pem_public_key(
            public_key.encode("ascii") if isinstance(public_key, str) else public_key
        )
    if not isinstance(public_key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    try:
        prefix, body, signature = document.strip().split(".")
    except ValueError:
        raise ValueError("not an isvapp license document") from None
    if prefix != PREFIX:
        raise ValueError("not an isvapp license document")
    try:
        public_key.verify(_unb64(signature), f"{prefix}.{body}".encode("ascii"))
    except (InvalidSignature, ValueError):
        raise ValueError("license signature is not valid") from None
    return json.loads(_unb64(body))
