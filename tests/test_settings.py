"""The settings registry (isvapp/settings): each setting declared once and read once, as its kind;
0 stays 0; names nobody declared are reported; the documents made from it are in step; and no
module reads a setting from the config itself."""

import ast
import logging
import runpy
from pathlib import Path

import pytest
from isvapp import create_app
from isvapp.config import DEFAULTS
from isvapp.settings import SettingError, documents, every_setting, load
from isvapp.settings.sections import ENVIRONMENT_ONLY

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "isvapp"


# --- declared once -----------------------------------------------------------------------------------


def test_every_setting_is_declared_once_with_a_doc_in_both_languages():
    names = [declared.name for declared in every_setting()]
    assert len(names) == len(set(names)) and len(names) > 90
    assert set(names) == set(DEFAULTS)
    for declared in every_setting():
        assert declared.doc.strip() and declared.zh.strip(), declared.name
        assert "\n" not in declared.doc and "\n" not in declared.zh, declared.name


def test_the_names_merchants_configure_are_all_still_read():
    """The names README's table and instance/config.example.py listed before the registry: each
    still a setting, with the default it had."""
    before = {
        "KOO_ACCESS_KEY": None,
        "KOO_SIGNATURE_WINDOW_S": 60,
        "KOO_G1_WINDOW_S": 86400,
        "LICENSE_RELAY_PER_MINUTE": 30,
        "LICENSE_RELAY_PER_ADDRESS_MINUTE": 120,
        "ALERT_WORKER_SILENT_S": 300,
        "ALERT_DISK_FREE_PCT": 10,
        "ALERT_WATCH_EVERY_S": 30,
        "JOB_MAX_ATTEMPTS": 12,
        "SQLITE_WAL_AUTOCHECKPOINT": 10_000,
        "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
        "KOO_KIT_MAX_BODY_BYTES": None,
        "CALLBACK_LOG_RETENTION_DAYS": 90,
        "PROVISIONER": "isvapp.provisioning:TemplateProvisioner",
        "LOG_FORMAT": "text",
    }
    assert {name: DEFAULTS[name] for name in before} == before


# --- read as its kind ----------------------------------------------------------------------------------


def test_values_from_the_environment_are_read_as_their_kind():
    """ISVAPP_* values are text, or what Flask's prefixed-env loader made of it as JSON."""
    settings = load(
        {
            "KOO_V2_PLAINTEXT_APPINFO": "false",
            "LOGIN_PKCE": False,
            "JOB_RETRY_BASE_S": "1.5",
            "ALERT_DISK_FREE_PCT": 2.5,
            "JOB_MAX_ATTEMPTS": "3",
            "KOO_ACCESS_KEY": "k1, k2",
            "KOO_KIT_ACCESS_KEY": 12345,  # a numeric-looking key, JSON-parsed to an int
            "ALERT_EMAIL_TO": ["a@example.com", "b@example.com"],
            "KOO_ENCRYPT_TYPE": 2,
            "LOG_FORMAT": " JSON ",
        }
    )
    assert settings.v2_plaintext_appinfo is False and settings.login.pkce is False
    assert settings.jobs.retry_base_s == 1.5 and settings.alerts.disk_free_pct == 2.5
    assert settings.jobs.max_attempts == 3
    assert settings.access_keys == ("k1", "k2") and settings.access_key == "k1"
    assert settings.kit_access_keys == ("12345",)
    assert settings.alerts.email_to == ("a@example.com", "b@example.com")
    assert settings.encrypt_type == "2" and settings.ops.log_format == "json"


def test_0_stays_0():
    """`or default` read a deliberate 0 as the default: LICENSE_RELAY_PER_MINUTE = 0 was 30."""
    settings = load(
        {
            "LICENSE_RELAY_PER_MINUTE": 0,
            "LICENSE_RELAY_PER_ADDRESS_MINUTE": "0",
            "KOO_KIT_MAX_BODY_BYTES": 0,
            "ALERT_DISK_FREE_PCT": 0,
            "ALERT_EXPIRING_DAYS": 0,
            "ALERT_DIGEST_HOUR": 0,
            "CALLBACK_LOG_RETENTION_DAYS": 0,
            "PRUNE_EVERY_H": 0,
            "LICENSE_RELAY_GRACE_H": 0,
            "ALERT_WATCH_EVERY_S": 0,
        }
    )
    assert settings.relay_per_minute == 0 and settings.relay_per_address_minute == 0
    assert settings.bodies.kit == 0 and settings.alerts.disk_free_pct == 0 and settings.alerts.expiring_days == 0
    assert settings.alerts.digest_hour == 0 and settings.callbacks.retention_days == 0
    assert settings.callbacks.prune_every_h == 0 and settings.relay_grace_s == 0
    assert settings.alerts.watch_every_s == 0


def test_unset_is_the_default_and_an_empty_text_stays_empty():
    settings = load({"KOO_QUERY_USAGE_FIELD": "", "KOO_API_BACKUP_URL": "", "JOB_LEASE_S": "", "APP_MEMO": None})
    assert settings.query_usage_field == "" and settings.api_backup_url == ""  # "" means none, as documented
    assert settings.jobs.lease_s == 60 and settings.app_memo == ""
    assert load({}).api_backup_url == "https://mkt.myhuaweicloud.cn" and load({}).bodies.kit is None


@pytest.mark.parametrize(
    "name, value, said",
    [
        ("JOB_LEASE_S", "soon", "JOB_LEASE_S must be a number, not 'soon'"),
        ("JOB_MAX_ATTEMPTS", 1.5, "JOB_MAX_ATTEMPTS must be a whole number, not 1.5"),
        ("JOB_MAX_ATTEMPTS", True, "JOB_MAX_ATTEMPTS must be a whole number, not True"),
        ("KOO_ENCRYPT_TYPE", "3", "KOO_ENCRYPT_TYPE must be one of 1, 2, not '3'"),
        ("ALERT_WINDOW_MIN", 0, "ALERT_WINDOW_MIN must be at least 1, not 0"),
        ("KOO_SIGNATURE_WINDOW_S", 0, "KOO_SIGNATURE_WINDOW_S must be at least 1, not 0"),
        ("KOO_API_TIMEOUT_S", 0, "KOO_API_TIMEOUT_S must be more than 0, not 0.0"),
        ("ALERT_SMTP_PORT", 0, "ALERT_SMTP_PORT must be at least 1, not 0"),
    ],
)
def test_a_value_that_cannot_be_read_is_refused_naming_the_setting(name, value, said):
    with pytest.raises(SettingError) as refused:
        load({name: value})
    assert str(refused.value) == said


def test_the_app_refuses_to_start_on_a_value_it_cannot_read(tmp_path, monkeypatch):
    monkeypatch.setenv("ISVAPP_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("ISVAPP_ALERT_NOTICE_GROUP_MIN", "0")
    with pytest.raises(SettingError, match="ALERT_NOTICE_GROUP_MIN must be at least 1"):
        create_app()


# --- names nobody declared -----------------------------------------------------------------------------


def unknown_app(tmp_path, monkeypatch, config_text, **environment):
    (tmp_path / "config.py").write_text(config_text)
    monkeypatch.setenv("ISVAPP_INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("ISVAPP_SQLALCHEMY_DATABASE_URI", raising=False)  # set on PostgreSQL runs
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return create_app()


def test_a_misspelt_variable_or_key_is_reported_with_the_nearest_name(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="isvapp.settings")
    app = unknown_app(
        tmp_path,
        monkeypatch,
        'SECRET_KEY = "x" * 40\nALERT_WECOM_UR = "https://qyapi.weixin.qq.com/x"\nDEBUG = False\n'
        "SQLALCHEMY_ENGINE_OPTIONS = {}\n",
        ISVAPP_LICENSE_RELAY_PER_MINUT="0",
        ISVAPP_BIND="127.0.0.1:8001",  # gunicorn's, environment only
        ISVAPP_TEST_POSTGRES="0",  # the test script's
    )
    assert app.extensions["isvapp_unknown_settings"] == [
        ("ALERT_WECOM_UR", "ALERT_WECOM_URL"),
        ("ISVAPP_LICENSE_RELAY_PER_MINUT", "ISVAPP_LICENSE_RELAY_PER_MINUTE"),
    ]
    assert app.extensions["isvapp"].relay_per_minute == 30  # ignored, as it always was: now said
    logged = [r.getMessage() for r in caplog.records if r.name == "isvapp.settings"]
    assert any("ISVAPP_LICENSE_RELAY_PER_MINUT" in line and "LICENSE_RELAY_PER_MINUTE?" in line for line in logged)
    assert any("ALERT_WECOM_UR (from instance/config.py)" in line and "ALERT_WECOM_URL?" in line for line in logged)


def test_each_unknown_name_is_logged_once_per_process(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="isvapp.settings")
    for _ in range(2):
        unknown_app(tmp_path, monkeypatch, 'SECRET_KEY = "x" * 40\nNOT_A_SETTING_AT_ALL_ONCE = 1\n')
    logged = [r.getMessage() for r in caplog.records if "NOT_A_SETTING_AT_ALL_ONCE" in r.getMessage()]
    assert len(logged) == 1 and "did you mean" not in logged[0]


def test_known_names_are_not_reported(tmp_path, monkeypatch):
    app = unknown_app(tmp_path, monkeypatch, 'SECRET_KEY = "x" * 40\nKOO_ACCESS_KEY = "k"\n', ISVAPP_WORKERS="3")
    assert app.extensions["isvapp_unknown_settings"] == []


# --- the documents -------------------------------------------------------------------------------------


def test_the_readme_tables_and_the_example_config_are_made_from_the_registry():
    stale = [str(path.relative_to(ROOT)) for path in documents.stale()]
    assert not stale, f"{stale}: run `.venv/bin/python -m isvapp.settings --write`"


def test_the_check_finds_a_setting_added_without_writing_the_documents(monkeypatch):
    from isvapp.settings import sections
    from isvapp.settings.registry import WHOLE, Setting

    extra = Setting("ALERT_SOMETHING_NEW", WHOLE, 1, "new", "新")
    real = sections.declared_in
    monkeypatch.setattr(documents, "declared_in", lambda group: real(group) + [extra] * (group is sections.Marketplace))
    assert len(documents.stale()) == 3  # both READMEs and the example


def test_the_example_config_holds_every_default():
    found = runpy.run_path(str(ROOT / "instance" / "config.example.py"))
    placeholders = {"SECRET_KEY", "KOO_ACCESS_KEY"}  # what a merchant must set: shown as placeholders
    for declared in every_setting():
        if declared.name not in placeholders:
            assert found[declared.name] == declared.default, declared.name
    assert {name for name in found if name.isupper()} == {declared.name for declared in every_setting()}


def test_the_tables_list_every_setting_and_environment_variable_in_both_languages():
    names = [declared.name for declared in every_setting()] + [variable.name for variable in ENVIRONMENT_ONLY]
    for language in ("en", "zh"):
        table = documents.table(language)
        assert all(f"| `{name}` |" in table for name in names), language


# --- nothing reads a setting but the registry ----------------------------------------------------------


def raw_reads(source, label):
    """`config[...]` and `config.get(...)` reads (of any `config` or `x.config`) in ``source``,
    but the fake marketplace's and IdP's own FAKE_* state."""
    found = []
    for node in ast.walk(ast.parse(source)):
        target, key = None, None
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            target, key = node.value, node.slice
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            target, key = node.func.value, node.args[0] if node.args else None
        if (getattr(target, "id", None) or getattr(target, "attr", None)) != "config":
            continue
        if isinstance(key, ast.Constant) and str(key.value).startswith("FAKE_"):
            continue
        found.append(f"{label}:{node.lineno}")
    return found


def test_the_raw_read_check_sees_a_raw_read():
    source = 'x = current_app.config.get("JOB_LEASE_S") or 60\ny = app.config["SECRET_KEY"]\napp.config["A"] = 1\n'
    assert sorted(raw_reads(source, "sample")) == ["sample:1", "sample:2"]


def test_no_module_reads_a_setting_from_the_config_itself():
    """isvapp.settings reads the config (and isvapp.config fills it); everything else reads typed
    sections: settings_of(app).alerts.worker_silent_s."""
    allowed = {PACKAGE / "config.py"} | set((PACKAGE / "settings").glob("*.py"))
    found = [
        line
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in allowed
        for line in raw_reads(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert found == []
