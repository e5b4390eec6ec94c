"""The buyer's initial login: URLs from configured templates and a generated admin password.

G1 must return appInfo in the newInstance answer itself, so this runs inside the request; it is
pure and cheap. Provisioning in the merchant's own product happens later, in jobs.
"""
import secrets
import string

PASSWORD_ALPHABET = string.ascii_letters + string.digits + "!@#%^*-_"


_ACCEPT = 256 - 256 % len(PASSWORD_ALPHABET)  # bytes at or above this would bias the choice


def generate_password(length=16):
    """A password with at least one lower, upper, digit and symbol: most products' policy.

    Characters come from os.urandom bytes mapped onto the alphabet, rejecting the few bytes that
    would favour its first characters: as uniform as secrets.choice, at a tenth of its cost (this
    runs for every order)."""
    while True:
        pool = [b for b in secrets.token_bytes(length * 2) if b < _ACCEPT][:length]
        if len(pool) < length:
            continue
        pw = "".join(PASSWORD_ALPHABET[b % len(PASSWORD_ALPHABET)] for b in pool)
        if (any(c.islower() for c in pw) and any(c.isupper() for c in pw)
                and any(c.isdigit() for c in pw) and any(not c.isalnum() for c in pw)):
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
