"""§3.7 vectors verbatim, round trips, and RSA-OAEP with both digests."""

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from isvapp.koo import codes
from isvapp.koo.codes import KooError
from isvapp.koo.fieldcrypto import aes_key, decrypt_field, encrypt_field, rsa_oaep_decrypt

pytestmark = pytest.mark.any_database  # pure: field encryption on the reference's vectors

KEY = "a1b2c3d4-0000-1111-2222-333344445555"
IV = "Ab3dEf7hIj1LmN0p"


def test_key_derivation_vectors():
    assert aes_key(KEY, "2").hex() == "8f7eef1fd8d98ca8275bb654bcb468ef"
    assert aes_key(KEY, "1").hex() == "8f7eef1fd8d98ca8275bb654bcb468ef46b5d94f3a10141ee280ba2cb4c94a0a"


@pytest.mark.parametrize(
    "encrypt_type, plaintext, expected",
    [
        ("1", "admin", "Ab3dEf7hIj1LmN0pBXfV/MwIMAxfPP4Skl0lHw=="),
        ("2", "admin", "Ab3dEf7hIj1LmN0p1RVUbaBauR7cnGWSdjwuyg=="),
        ("1", "P@ssw0rd-中文", "Ab3dEf7hIj1LmN0pDq8od/J+MzeHXx6wqw6I3w=="),
    ],
)
def test_encryption_vectors(encrypt_type, plaintext, expected):
    assert encrypt_field(KEY, plaintext, encrypt_type, IV) == expected
    assert decrypt_field(KEY, expected, encrypt_type) == plaintext


def test_random_iv_is_sixteen_alphanumerics_and_round_trips():
    a, b = encrypt_field(KEY, "secret"), encrypt_field(KEY, "secret")
    assert a != b and a[:16].isalnum() and len(a[:16]) == 16
    assert decrypt_field(KEY, a) == "secret"


def test_wrong_key_or_garbage_is_refused():
    with pytest.raises(KooError) as error:
        decrypt_field(KEY, IV + "not base64!")
    assert error.value.code == codes.INVALID_PARAM
    with pytest.raises(KooError):
        aes_key(KEY, "3")


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


@pytest.mark.parametrize("digest", [hashes.SHA256, hashes.SHA1])
def test_rsa_oaep_both_digests(rsa_key, digest):
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=digest()), algorithm=digest(), label=None)
    ciphertext = base64.b64encode(rsa_key.public_key().encrypt(b"client-secret-123", oaep)).decode()
    assert rsa_oaep_decrypt(rsa_key, ciphertext) == "client-secret-123"


def test_rsa_failure_is_000101(rsa_key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    ciphertext = base64.b64encode(other.public_key().encrypt(b"x", oaep)).decode()
    for value in (ciphertext, "%%%"):
        with pytest.raises(KooError) as error:
            rsa_oaep_decrypt(rsa_key, value)
        assert error.value.code == codes.APP_SECRET_ERROR
