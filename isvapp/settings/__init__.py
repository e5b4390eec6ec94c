"""The settings registry: every setting declared once (sections.py), read once per app into typed
sections on ``app.extensions["isvapp"]``, and read from there as ``settings.alerts.worker_silent_s``.

    registry.py   how a setting is declared and typed (Setting, the kinds, read), and names nobody declared
    sections.py   the declarations: the root Settings and its sections, in the documents' order
    documents.py  README's configuration tables and instance/config.example.py, made from them
                  (``python -m isvapp.settings --write``; a test keeps them in step)

Where the values come from (defaults, instance/config.py, ``ISVAPP_*``) is isvapp.config's business;
this package only reads them. Nothing else reads ``app.config`` for a setting.
"""

import dataclasses
import logging
from collections import defaultdict

from ..throttle import Throttle, once
from .registry import SettingError, is_true, read, unknown_names
from .sections import ENVIRONMENT_ONLY, SECTIONS, TOOL_VARIABLES, Settings, every_setting

__all__ = [
    "SettingError",
    "Settings",
    "defaults",
    "every_setting",
    "init_app",
    "is_true",
    "load",
    "report_unknown",
    "settings_of",
    "value_of",
]

log = logging.getLogger("isvapp.settings")

MAIN_API_URL, BACKUP_API_URL = "https://mkt.myhuaweicloud.com", "https://mkt.myhuaweicloud.cn"
INTL_API_URL = "https://mkt-intl.myhuaweicloud.com"
# The main domains whose pages name mkt.myhuaweicloud.cn as the backup: the China pages (License,
# usage push) for mkt.myhuaweicloud.com, and the international "Pushing the Pay-per-Use Resource
# Usage (New)" (topic_0070649117) for mkt-intl: "If mkt-intl.myhuaweicloud.com is unavailable,
# try mkt.myhuaweicloud.cn." No page names one for the EU site (docs/protocol.md §13.1).
BACKED_UP_API_URLS = (MAIN_API_URL, INTL_API_URL)


def defaults():
    """{name: default} of every setting, as written in configuration (isvapp.config starts from it)."""
    return {declared.name: declared.default for declared in every_setting()}


def load(config) -> Settings:
    """Every setting from ``config`` (any mapping of names to values), typed; raises SettingError,
    naming the setting, for a value that cannot be read."""
    settings = read(Settings, config, **{name: read(section, config) for name, section in SECTIONS.items()})
    access_keys = settings.access_keys
    kit_access_keys = settings.kit_access_keys or access_keys
    access_key = access_keys[0] if access_keys else None
    backup = settings.api_backup_url
    if backup is None:
        backup = BACKUP_API_URL if settings.api_base_url in BACKED_UP_API_URLS else ""
    return dataclasses.replace(
        settings,
        access_key=access_key,
        kit_access_keys=kit_access_keys,
        kit_access_key=kit_access_keys[0] if kit_access_keys else None,
        usage_key=settings.usage_key or access_key,
        api_backup_url=backup.rstrip("/"),
    )


def settings_of(app) -> Settings:
    return app.extensions["isvapp"]


def value_of(settings, name):
    """The typed value of the setting called ``name`` (as a merchant writes it: ALERT_SMTP_HOST),
    for a page that lists settings by name; KeyError for a name no setting declares."""
    for field in dataclasses.fields(settings):
        if field.metadata.get("setting") is not None and field.metadata["setting"].name == name:
            return getattr(settings, field.name)
    for section_name in SECTIONS:
        section = getattr(settings, section_name)
        for field in dataclasses.fields(section):
            if field.metadata.get("setting") is not None and field.metadata["setting"].name == name:
                return getattr(section, field.name)
    raise KeyError(name)


# One warning per name and process: create_app runs more than once in one (tests, commands that
# make a second app), and one line per name is enough.
_REPORT_ONCE: defaultdict[str, Throttle] = defaultdict(once)


def init_app(app):
    """Read the settings onto ``app``: once, when it is made."""
    app.extensions["isvapp"] = load(app.config)


def report_unknown(app, named=(), environment=()):
    """Report the names instance/config.py (``named``) and the environment (``ISVAPP_*``) gave that
    no setting declares, each with the nearest known name: a warning from this process, once per
    name, and a row on the go-live page (kept on app.extensions)."""
    known = [declared.name for declared in every_setting()]
    environment_only = [variable.name for variable in ENVIRONMENT_ONLY]
    tools = [name for name in environment if name.startswith(TOOL_VARIABLES)]
    unknown = unknown_names(named, environment, known, environment_only + tools)
    app.extensions["isvapp_unknown_settings"] = unknown
    for name, close in unknown:
        if _REPORT_ONCE[name].due():
            where = "the environment" if name.startswith("ISVAPP_") else "instance/config.py"
            log.warning(
                "%s (from %s) is not a setting isvapp knows%s: it is ignored",
                name,
                where,
                f"; did you mean {close}?" if close else "",
            )
