"""The buyer's initial login: URLs from configured templates and a generated admin password.

G1 must return appInfo in the newInstance answer itself, so this runs inside the request; it is
pure and cheap. Provisioning in the merchant's own product happens later, in jobs.
"""

import secrets
import string

PASSWORD_ALPHABET = string.ascii_letters + string.digits + "!@#%^*-_"


_ACCEPT = 256 - 256 % len(PASSWORD_ALPHABET)  # bytes at or above this would bias the choice
# Byte b < _ACCEPT -> PASSWORD_ALPHABET[b % len], the others deleted: one bytes.translate does both.
_TO_ALPHABET = bytes(ord(PASSWORD_ALPHABET[b % len(PASSWORD_ALPHABET)]) if b < _ACCEPT else 0 for b in range(256))
_REJECTED = bytes(range(_ACCEPT, 256))
_CLASSES = tuple(
    frozenset(chars)
    for chars in (
        string.ascii_lowercase,
        string.ascii_uppercase,
        string.digits,
        set(PASSWORD_ALPHABET) - set(string.ascii_letters + string.digits),
    )
)


def generate_password(length=16):
    """A password with at least one lower, upper, digit and symbol: most products' policy.

    Characters come from os.urandom bytes mapped onto the alphabet, rejecting the few bytes that
    would favour its first characters: as uniform as secrets.choice, at a tenth of its cost (this
    runs for every order). The mapping and the class check run in C (bytes.translate, set
    operations): the same password from the same bytes as a loop per character, at a third of its cost."""
    while True:
        pw = secrets.token_bytes(length * 2).translate(_TO_ALPHABET, _REJECTED)[:length].decode("ascii")
        if len(pw) == length and all(not chars.isdisjoint(pw) for chars in _CLASSES):
            return pw


def initial_credentials(settings, instance_id, order_id):
    fmt = {"instance_id": instance_id, "order_id": order_id}
    return {
        "front_end_url": settings.frontend_url_template.format(**fmt)[:512],
        "admin_url": settings.admin_url_template.format(**fmt)[:512],
        "admin_user": settings.admin_user_template.format(**fmt)[:255],
        "admin_password": generate_password(),
        "memo": settings.app_memo[:1024] or None,
    }
