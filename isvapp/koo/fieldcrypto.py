"""Field encryption: the SHA1PRNG-derived AES key (§3.7) and RSA-OAEP for Kit clientSecret.

The marketplace is written in Java and derives its AES key with ``SecureRandom("SHA1PRNG")``
seeded by the Key; reproducing that stream, including Java's signed-byte carry, is the only way
for our ciphertext to decrypt on their side.
"""

import base64
import hashlib
import secrets
import string

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .codes import APP_SECRET_ERROR, INVALID_PARAM, KooError

ENCRYPT_BITS = {"1": 256, "2": 128}
IV_ALPHABET = string.ascii_letters + string.digits


def _s8(b):
    return b - 256 if b > 127 else b


def sha1prng_bytes(seed, n):
    """The first n bytes of Java's SUN SHA1PRNG seeded with ``seed`` (and nothing else)."""
    state = bytearray(hashlib.sha1(seed).digest())
    stream = b""
    while len(stream) < n:
        out = hashlib.sha1(bytes(state)).digest()
        stream += out
        carry, changed = 1, False
        for i in range(20):
            v = _s8(state[i]) + _s8(out[i]) + carry
            t = v & 0xFF
            changed |= state[i] != t
            state[i] = t
            carry = v >> 8
        if not changed:
            state[0] = (state[0] + 1) & 0xFF
    return stream[:n]


def aes_key(key, encrypt_type="1"):
    """The AES key the marketplace derives from the Key for encryptType 1 (AES-256) or 2 (AES-128)."""
    try:
        bits = ENCRYPT_BITS[str(encrypt_type)]
    except KeyError:
        raise KooError(INVALID_PARAM, f"encryptType must be 1 or 2, not {encrypt_type!r}") from None
    return sha1prng_bytes(key.encode("utf-8"), bits // 8)


def encrypt_field(key, plaintext, encrypt_type="1", iv=None):
    """``iv (16 ASCII chars) + Base64(AES-CBC-PKCS5(plaintext))``, the appInfo userName/password form."""
    iv = iv or "".join(secrets.choice(IV_ALPHABET) for _ in range(16))
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext.encode("utf-8")) + padder.finalize()
    enc = Cipher(algorithms.AES(aes_key(key, encrypt_type)), modes.CBC(iv.encode("ascii"))).encryptor()
    return iv + base64.b64encode(enc.update(data) + enc.finalize()).decode("ascii")


def decrypt_field(key, value, encrypt_type="1"):
    """The inverse of :func:`encrypt_field`; raises KooError(000002) on anything malformed."""
    try:
        iv, ciphertext = value[:16].encode("ascii"), base64.b64decode(value[16:], validate=True)
        dec = Cipher(algorithms.AES(aes_key(key, encrypt_type)), modes.CBC(iv)).decryptor()
        unpadder = padding.PKCS7(128).unpadder()
        data = unpadder.update(dec.update(ciphertext) + dec.finalize()) + unpadder.finalize()
        return data.decode("utf-8")
    except (ValueError, UnicodeError) as exc:
        raise KooError(INVALID_PARAM, f"encrypted field cannot be decrypted: {exc}") from None


# (OAEP digest, MGF1 digest): SHA-256 throughout (project rule), Java's
# "RSA/ECB/OAEPWithSHA-256AndMGF1Padding" (SHA-256 with MGF1-SHA-1, its default), then SHA-1.
OAEP_READINGS = ((hashes.SHA256, hashes.SHA256), (hashes.SHA256, hashes.SHA1), (hashes.SHA1, hashes.SHA1))


def lenient_b64decode(text):
    """Standard or URL-safe Base64, with line breaks (Java's MIME encoder) and with or without padding."""
    compact = "".join(text.split()).replace("-", "+").replace("_", "/")
    return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)


def rsa_oaep_decrypt(private_key, ciphertext_b64):
    """Decrypt a Kit clientSecret with each OAEP reading in turn (OAEP_READINGS).

    Raises KooError(000101) when no reading yields UTF-8 text.
    """
    try:
        ciphertext = lenient_b64decode(ciphertext_b64)
    except ValueError:
        raise KooError(APP_SECRET_ERROR, "clientSecret is not Base64") from None
    for digest, mgf_digest in OAEP_READINGS:
        oaep = asym_padding.OAEP(mgf=asym_padding.MGF1(algorithm=mgf_digest()), algorithm=digest(), label=None)
        try:
            return private_key.decrypt(ciphertext, oaep).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
    raise KooError(APP_SECRET_ERROR, "clientSecret cannot be decrypted with the configured RSA key")
