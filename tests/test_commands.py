"""The commands a merchant is told to type work as typed, from the project folder.

A hint that reads ``flask --app isvapp jobs list`` fails in a plain shell (the virtual
environment's flask and its libraries are not on the PATH); ``.venv/bin/isvapp jobs list`` works.
So no page, message, README, doc or script names ``flask --app isvapp``, except the one sentence
form that explains the equivalence (``flask --app isvapp COMMAND``), and the ``isvapp`` command
itself lists every command.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .live import ROOT

pytestmark = pytest.mark.live  # every test here starts a server, a process or a browser

OLD = re.compile(r"flask --app isvapp(?! COMMAND)")
# Where a merchant reads a command: the pages, every Python string (messages, hints, --help, the
# docstrings a merchant meets through --help), the catalogs, the documents and the scripts.
WHERE = [
    *sorted((ROOT / "isvapp").rglob("*.html")),
    *sorted((ROOT / "isvapp").rglob("*.py")),
    *sorted((ROOT / "isvapp" / "translations").rglob("*.po")),
    ROOT / "README.md",
    ROOT / "README.zh-CN.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "instance").glob("*")),
    *sorted((ROOT / "scripts").glob("*.sh")),
    ROOT / "wsgi.py",
    ROOT / "gunicorn.conf.py",
]


def test_no_page_message_or_document_names_flask_dash_dash_app():
    found = []
    for path in WHERE:
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OLD.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:140]}")
    assert len(WHERE) > 100
    assert not found, "name `.venv/bin/isvapp ...` instead:\n" + "\n".join(found)


def test_the_isvapp_command_in_the_virtual_environment_lists_the_commands(tmp_path):
    command = Path(sys.executable).parent / "isvapp"
    assert command.is_file(), f"{command} is missing: pip install -e . makes it (setup.cfg console_scripts)"
    env = {**os.environ, "ISVAPP_INSTANCE_PATH": str(tmp_path / "instance")}
    env.pop("FLASK_APP", None)
    result = subprocess.run([str(command), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    listed = set(re.findall(r"^  ([a-z][a-z-]+)\s", result.stdout, re.M))
    wanted = {
        "init-config",
        "init-db",
        "create-admin",
        "worker",
        "jobs",
        "simulate",
        "fake-market",
        "fake-idp",
        "fake-idp-tenant",
        "backup",
        "prune",
        "usage",
        "kit-keygen",
        "license-key",
        "alert-test",
        "next-steps",
    }
    assert wanted <= listed, (sorted(wanted - listed), result.stdout)
    assert "Traceback" not in result.stderr


def test_a_command_from_the_readme_runs_as_typed_from_the_project_folder(tmp_path):
    """What the overview's dead-job hint says, typed in the project folder with no virtual
    environment active: the PATH is the system's, the command is the venv's own."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ISVAPP_INSTANCE_PATH": str(tmp_path / "instance")}
    venv_bin = Path(sys.executable).parent
    if venv_bin.parent.resolve() != (ROOT / ".venv").resolve():
        relative = str(venv_bin / "isvapp")  # tests run from another environment: its isvapp
    else:
        relative = ".venv/bin/isvapp"
    subprocess.run([relative, "init-db"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
    result = subprocess.run(
        [relative, "jobs", "list", "--state", "dead"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_create_admin_states_its_password_rule_before_asking(runner):
    result = runner.invoke(args=["create-admin", "boss"], input="short\nlong enough password\nlong enough password\n")
    assert result.exit_code == 0, result.output
    output = result.output
    rule = output.find("10 characters")
    assert 0 <= rule < output.find("Repeat for confirmation"), output
    assert output.count("Repeat for confirmation") == 1  # the short one was refused at once, not after both
    assert "admin boss: created" in output


def test_the_first_run_does_not_warn_about_the_secret_key_init_config_is_about_to_write(tmp_path):
    """scripts/run.sh runs init-config first, on a fresh instance folder: no SECRET_KEY yet, and
    none needed to write one."""
    env = {**os.environ, "ISVAPP_INSTANCE_PATH": str(tmp_path / "instance")}
    env.pop("ISVAPP_SECRET_KEY", None)
    command = Path(sys.executable).parent / "isvapp"
    result = subprocess.run(
        [str(command), "init-config"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "Wrote" in result.stdout, result
    assert "SECRET_KEY" not in result.stderr, result.stderr


def test_the_worker_warns_about_a_weak_secret_key_as_it_starts(runner, caplog):
    """The warning create_app gave every command now comes from the process that opens sealed
    secrets (gunicorn refuses to serve instead, tests/test_abuse.py)."""
    result = runner.invoke(args=["worker", "--until-idle"])
    assert result.exit_code == 0, result.output
    assert "SECRET_KEY is too short" in caplog.text  # the test app's key is "test-secret"
