"""Stop and start the throwaway PostgreSQL server of scripts/with-postgres.sh: a database outage.

with-postgres.sh exports ISVAPP_TEST_PG_CTL (pg_ctl), ISVAPP_TEST_PG_DATA (the cluster),
ISVAPP_TEST_PG_LOG, ISVAPP_TEST_PG_OPTIONS (the options it was started with: port, socket folder,
settings; `pg_ctl start` does not remember them) and ISVAPP_TEST_PG_RUNUSER (the cluster's owner
when we are root, who pg_ctl must run as; empty otherwise). The server comes back on the same port
with the same data, so every test's database (conftest: one a test) is still there.
"""

import os
import shutil
import subprocess
import tempfile
import time

_ENV = ("ISVAPP_TEST_PG_CTL", "ISVAPP_TEST_PG_DATA", "ISVAPP_TEST_PG_LOG", "ISVAPP_TEST_PG_OPTIONS")


def available():
    """True when the tests run on a server scripts/with-postgres.sh made (one they may restart)."""
    return all(os.environ.get(name) for name in _ENV) and os.access(os.environ["ISVAPP_TEST_PG_CTL"], os.X_OK)


def _pg_ctl(*args, timeout=90):
    command = [os.environ["ISVAPP_TEST_PG_CTL"], "-D", os.environ["ISVAPP_TEST_PG_DATA"], *args]
    user = os.environ.get("ISVAPP_TEST_PG_RUNUSER")
    if user:
        command = [shutil.which("runuser") or "runuser", "-u", user, "--", *command]
    # Not a pipe for the output: the server pg_ctl starts could keep it open, and we would wait
    # for it to end.
    with tempfile.TemporaryFile() as output:
        result = subprocess.run(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, timeout=timeout
        )
        if result.returncode != 0:
            output.seek(0)
            raise RuntimeError(
                f"pg_ctl {' '.join(args)} failed ({result.returncode}): "
                f"{output.read().decode(errors='replace')[-2000:]}"
            )


def restart_postgres(down_s=3.0):
    """Stop the server (fast: sessions are cut off, open transactions rolled back), keep it down
    ``down_s`` seconds, start it again and wait until it takes connections. Returns how long it
    was down, in seconds."""
    if not available():
        raise RuntimeError("no restartable PostgreSQL: run the tests through scripts/with-postgres.sh")
    _pg_ctl("stop", "-m", "fast", "-w", "-t", "60")
    stopped = time.monotonic()
    time.sleep(down_s)
    _pg_ctl(
        "start", "-w", "-t", "60", "-l", os.environ["ISVAPP_TEST_PG_LOG"], "-o", os.environ["ISVAPP_TEST_PG_OPTIONS"]
    )
    return time.monotonic() - stopped
