"""Kit sync at enterprise scale: allOrgSync of N departments, authSync of M users.

Runs the real endpoint (Flask test client, real SQLite file or the PostgreSQL URI in
ISVAPP_SQLALCHEMY_DATABASE_URI) and reports the median wall time of each request and the peak
Python memory allocated while serving it (tracemalloc, measured on a separate run because
tracing slows the code down).

    python -m bench.kit_sync 50000 10000
"""

import json
import statistics
import sys
import tempfile
import time
import tracemalloc

from isvapp import create_app
from isvapp.koo.signing import kit_signed_request
from isvapp.storage.schema import init_db

KEY = "bench-kit-key"


def departments(n, suffix=""):
    """A tree ten levels deep at most: department i's parent is i // 10."""
    return [
        {"orgCode": f"d{i}", "name": f"Department {i}{suffix}", "parentCode": f"d{i // 10}" if i else None}
        for i in range(n)
    ]


def users(m):
    return [
        {
            "userName": f"user{i}",
            "name": f"User {i}",
            "orgCode": f"d{i % 1000}",
            "role": "user",
            "enable": True,
            "employeeCode": f"E{i:06d}",
        }
        for i in range(m)
    ]


def _post(client, name, body):
    raw, headers = kit_signed_request(KEY, body)
    response = client.post(f"/produce/produceAPI/v2/{name}", data=raw, headers=headers)
    response.close()
    answer = json.loads(response.data)
    if answer["resultCode"] != "000000":
        raise RuntimeError(f"{name} answered {answer}")


def _timed(client, name, body):
    started = time.perf_counter()
    _post(client, name, body)
    return time.perf_counter() - started


def _peak(client, name, body):
    tracemalloc.start()
    try:
        _post(client, name, body)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(departments_n: int, users_n: int, repeats: int = 3) -> dict:
    """Seconds (median of ``repeats``) and peak MiB for first and repeated syncs."""
    scope = {"instanceId": "bench-instance", "tenantId": "bench-tenant", "testFlag": 1}
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(
            {
                "TESTING": False,
                "INSTANCE_PATH": folder,
                "SECRET_KEY": "bench",
                "KOO_ACCESS_KEY": "bench",
                "KOO_KIT_ACCESS_KEY": KEY,
            }
        )
        with app.app_context():
            init_db()
        client = app.test_client()
        org_a = {**scope, "orgInfo": departments(departments_n)}
        org_b = {**scope, "orgInfo": departments(departments_n, " renamed")}
        auth = {**scope, "appId": "bench-app", "userList": users(users_n), "flag": 1}
        first = _timed(client, "allOrgSync", org_a)  # into an empty table
        repeat, renamed, users_first, users_repeat = [], [], [], []
        for _ in range(repeats):
            repeat.append(_timed(client, "allOrgSync", org_a))  # nothing changes
            renamed.append(_timed(client, "allOrgSync", org_b))  # every name changes
            _post(client, "allOrgSync", org_a)
        for _ in range(repeats):
            users_first.append(_timed(client, "authSync", {**auth, "appId": f"app-{_}"}))  # new rows
            users_repeat.append(_timed(client, "authSync", auth))
        mib = 1024 * 1024
        return {
            "departments": departments_n,
            "users": users_n,
            "allOrgSync_first_s": first,
            "allOrgSync_repeat_s": statistics.median(repeat),
            "allOrgSync_all_renamed_s": statistics.median(renamed),
            "authSync_s": statistics.median(users_first),
            "authSync_repeat_s": statistics.median(users_repeat),
            "allOrgSync_peak_mib": _peak(client, "allOrgSync", org_a) / mib,
            "authSync_peak_mib": _peak(client, "authSync", auth) / mib,
            "body_mib": len(json.dumps(org_a)) / mib,
        }


def main(argv):
    n = int(argv[1]) if len(argv) > 1 else 50_000
    m = int(argv[2]) if len(argv) > 2 else 10_000
    for key, value in measure(n, m).items():
        print(f"{key:28} {value:.3f}" if isinstance(value, float) else f"{key:28} {value}")


if __name__ == "__main__":
    main(sys.argv)
