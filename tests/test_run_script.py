"""./scripts/run.sh as a new user meets it: "serving on" only once it serves, a busy port named."""

import os
import signal
import socket
import subprocess
import time

import pytest
import requests

from .live import ROOT, free_port

# every test here starts gunicorn; any_database: how run.sh announces itself
pytestmark = [pytest.mark.live, pytest.mark.any_database]


def start(tmp_path, bind):
    env = {
        **os.environ,
        "ISVAPP_BIND": bind,
        "ISVAPP_INSTANCE_PATH": str(tmp_path / "instance"),
        "ISVAPP_WORKERS": "1",
        "ISVAPP_ACCESS_LOG": "/dev/null",
    }
    return subprocess.Popen(
        ["bash", "scripts/run.sh"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_serving_is_announced_only_once_it_serves_with_the_next_steps(tmp_path):
    port = free_port()
    proc = start(tmp_path, f"127.0.0.1:{port}")
    lines, deadline = [], time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "serving on" in line:
                assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            if "Seller Console's Key" in line:
                break
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    text = "".join(lines)
    assert f"serving on http://127.0.0.1:{port}" in text, text
    assert "SECRET_KEY is not set" not in text, text  # init-config writes it: no warning first
    assert ".venv/bin/isvapp create-admin NAME" in text and f"http://127.0.0.1:{port}/admin/go-live" in text


def test_a_busy_port_gets_one_clear_line_naming_isvapp_bind(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = start(tmp_path, f"127.0.0.1:{port}")
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "already in use" in out and "ISVAPP_BIND" in out and "serving on" not in out
