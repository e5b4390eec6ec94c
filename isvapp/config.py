"""Where configuration comes from, and the instance folder's files it names.

Order: the defaults every setting declares (isvapp.settings), then ``instance/config.py``, then
``ISVAPP_<KEY>`` environment variables. Flask's prefixed-env loader parses values as JSON, so a
numeric-looking key arrives as an int: isvapp.settings reads every value as its setting's kind.
Nothing but isvapp.settings reads a setting from the config this fills.
"""

import os

from flask import Config

from .settings import defaults, is_true
from .texts import N_, Text

__all__ = ["DEFAULTS", "KEY_FILES", "configure", "is_true", "secret_key_problem", "secret_key_problem_text"]

DEFAULTS = defaults()
DB_FILENAME = "isvapp.sqlite"


# SECRET_KEY signs the pages' session cookies: a guessable one lets anyone forge an admin session.
MIN_SECRET_KEY_LENGTH = 32
PLACEHOLDER_SECRET_KEYS = {
    "change-me",
    "changeme",
    "secret",
    "dev",
    "development",
    "test",
    "...",
    "xxx",
    "please-change-me",
    "your-secret-key",
}


def secret_key_problem_text(value):
    """Why SECRET_KEY is not fit to serve with, as a text the pages translate (isvapp.texts), or None."""
    text = str(value or "").strip()
    if not text:
        return Text(
            N_(
                "SECRET_KEY is not set: run `.venv/bin/isvapp init-config` to write one into instance/config.py, "
                "or set ISVAPP_SECRET_KEY to the output of `python3 -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        )
    if text.lower() in PLACEHOLDER_SECRET_KEYS:
        return Text(
            N_(
                "SECRET_KEY is the placeholder %(value)s: run `.venv/bin/isvapp init-config` to write one into "
                "instance/config.py, or set ISVAPP_SECRET_KEY to the output of "
                "`python3 -c 'import secrets; print(secrets.token_hex(32))'`"
            ),
            {"value": repr(text)},
        )
    if len(text) < MIN_SECRET_KEY_LENGTH or len(set(text)) < 8:
        return Text(
            N_(
                "SECRET_KEY is too short or too plain (at least %(length)s varied characters): run "
                "`.venv/bin/isvapp init-config` to write one into instance/config.py, or set ISVAPP_SECRET_KEY "
                "to the output of `python3 -c 'import secrets; print(secrets.token_hex(32))'`"
            ),
            {"length": MIN_SECRET_KEY_LENGTH},
        )
    return None


def secret_key_problem(value):
    """Why SECRET_KEY is not fit to serve with, in English (a log line), or None."""
    problem = secret_key_problem_text(value)
    return problem.english if problem else None


LICENSE_KEY_FILENAME = "license_ed25519.pem"
LOGIN_KEY_FILENAME = "login_ed25519.pem"
KIT_RSA_KEY_FILENAME = "kit_rsa_private.pem"
# The private keys kept in files: each setting, and its file in the instance folder when unset.
KEY_FILES = {
    "LICENSE_SIGNING_KEY": LICENSE_KEY_FILENAME,
    "KOO_KIT_RSA_PRIVATE_KEY": KIT_RSA_KEY_FILENAME,
    "LOGIN_SIGNING_KEY": LOGIN_KEY_FILENAME,
}


def default_database_uri(instance_path):
    return "sqlite:///" + os.path.join(os.path.abspath(instance_path), DB_FILENAME)


def configure(config, instance_path, test_config=None, config_file="config.py", environment=True, named=None):
    """Fill ``config`` (a flask.Config on the instance folder) as the server reads it: these
    defaults, then ``config_file`` (instance/config.py), then ISVAPP_* environment variables (unless
    ``environment`` is False); or the defaults and ``test_config``. The database and the key files
    default to the instance folder. `isvapp restore` reads a restored config.py through it too.
    ``named``, a set, receives the names the file gave (create_app reports those no setting declares)."""
    config.from_mapping(DEFAULTS)
    if test_config is None:
        from_file = Config(config.root_path)
        from_file.from_pyfile(config_file, silent=True)
        config.update(from_file)
        if named is not None:
            named.update(from_file)
        if environment:
            config.from_prefixed_env("ISVAPP")
    else:
        config.from_mapping(test_config)
    if not config["SQLALCHEMY_DATABASE_URI"]:
        config["SQLALCHEMY_DATABASE_URI"] = default_database_uri(instance_path)
    for name, filename in KEY_FILES.items():
        if not config[name]:
            config[name] = os.path.join(instance_path, filename)
    return config
