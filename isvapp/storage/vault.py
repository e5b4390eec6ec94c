"""Secrets at rest (admin passwords, Kit clientSecret): AES-GCM under a key derived from SECRET_KEY.

The database file is the thing most often copied around (backups, bug reports); a sealed value
in it is useless without the instance folder's SECRET_KEY.
"""

import base64
import functools
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"isvapp vault v1"


@functools.lru_cache(maxsize=8)
def _aead(secret_key):
    """The AES-GCM key derived from SECRET_KEY, derived once per process (it runs for every order)."""
    if not secret_key:
        raise RuntimeError("SECRET_KEY is not configured: cannot seal or open stored secrets")
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key.encode("utf-8")))


def seal(secret_key, plaintext):
    nonce = os.urandom(12)
    sealed = _aead(secret_key).encrypt(nonce, plaintext.encode("utf-8"), _INFO)
    return "v1:" + base64.b64encode(nonce + sealed).decode("ascii")


def unseal(secret_key, token):
    raw = base64.b64decode(token.removeprefix("v1:"))
    return _aead(secret_key).decrypt(raw[:12], raw[12:], _INFO).decode("utf-8")
