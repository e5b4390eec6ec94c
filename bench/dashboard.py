"""The pages at scale: list and search pages over 100,000 instances and 1,000,000 log rows.

Fills a temporary SQLite database with bulk inserts (instances over a year, callbacks over 90
days, 1 in 20 failed), logs in, and reports the median server time of each page (Flask test
client, so no network or browser time is counted).

    python -m bench.dashboard 100000 1000000
"""

import random
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta

from isvapp import create_app
from isvapp.dashboard import security
from isvapp.extensions import db
from isvapp.storage.models import Callback, Instance, InstanceState, utcnow
from isvapp.storage.schema import init_db

PAGES = {
    "overview": "/admin/",
    "instances": "/admin/instances",
    "instances, state + expiring": "/admin/instances?state=ACTIVE&expiring=30&sort=expire",
    "instances, search order id": "/admin/instances?q=ORD0054321&data=all",
    "instances, search customer": "/admin/instances?q=Customer 0777&data=all",
    "instances, page 100": "/admin/instances?page=100",
    "callbacks": "/admin/callbacks",
    "callbacks, failures": "/admin/callbacks?code=fail",
    "callbacks, activity + dates": "/admin/callbacks?activity=refreshInstance&from=2026-10-01&to=2026-10-31",
    "callbacks, search order id": "/admin/callbacks?q=ORD0054321",
}


def fill(instances, log_rows, batch=10_000):
    rng, now = random.Random(7), utcnow()
    states = [InstanceState.ACTIVE] * 8 + [InstanceState.FROZEN, InstanceState.RELEASED]
    rows = []
    for i in range(instances):
        rows.append(
            dict(
                instance_id=f"inst-{i:07d}",
                generation="G2",
                product_type="saas",
                state=rng.choice(states),
                details_state="fetched",
                test_flag=i % 10 == 0,
                trial=False,
                order_id=f"ORD{i:07d}",
                order_line_id=f"ORD{i:07d}-000001",
                product_id=f"prod-{i % 20}",
                customer_id=f"cust{i % 5000:05d}",
                customer_name=f"Customer {i % 5000:04d}",
                expire_time=now + timedelta(days=rng.randint(-30, 365)),
                created_at=now - timedelta(days=rng.randint(0, 365)),
                updated_at=now,
            )
        )
        if len(rows) == batch:
            db.session.execute(Instance.__table__.insert(), rows)
            rows = []
    if rows:
        db.session.execute(Instance.__table__.insert(), rows)
    activities = ["newInstance", "refreshInstance", "updateInstanceStatus", "queryInstance", "releaseInstance"]
    rows = []
    for _ in range(log_rows):
        order = rng.randrange(instances)
        failed = rng.random() < 0.05
        rows.append(
            dict(
                received_at=now - timedelta(seconds=rng.randint(0, 90 * 86400)),
                method="POST",
                path="/produce",
                generation="G2",
                activity=rng.choice(activities),
                order_id=f"ORD{order:07d}",
                instance_id=f"inst-{order:07d}",
                test_flag=False,
                result_code="000002" if failed else "000000",
                result_msg="orderId: Missing data" if failed else "success.",
                duration_ms=3.2,
                remote_addr="127.0.0.1",
                request="{}",
                response="{}",
            )
        )
        if len(rows) == batch:
            db.session.execute(Callback.__table__.insert(), rows)
            rows = []
    if rows:
        db.session.execute(Callback.__table__.insert(), rows)
    db.session.commit()
    db.session.execute(db.text("ANALYZE"))
    db.session.commit()


def measure(instances: int, log_rows: int, repeats: int = 7) -> dict:
    """Median milliseconds per page, plus how long filling took."""
    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"TESTING": False, "INSTANCE_PATH": folder, "SECRET_KEY": "bench", "KOO_ACCESS_KEY": "b"})
        with app.app_context():
            init_db()
            started = time.perf_counter()
            fill(instances, log_rows)
            fill_s = time.perf_counter() - started
            security.set_password("bench", "bench password")
            db.session.remove()
        client = app.test_client()
        page = client.get("/admin/login").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        client.post("/admin/login", data={"name": "bench", "password": "bench password", "csrf_token": csrf})
        figures = {"instances": instances, "log_rows": log_rows, "fill_s": round(fill_s, 1)}
        for name, url in PAGES.items():
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                response = client.get(url)
                response.get_data()
                times.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200, (url, response.status_code)
            figures[f"{name} ms"] = round(statistics.median(times), 1)
        return figures


def main(argv):
    n = int(argv[1]) if len(argv) > 1 else 100_000
    m = int(argv[2]) if len(argv) > 2 else 1_000_000
    for key, value in measure(n, m).items():
        print(f"{key:34} {value}")


if __name__ == "__main__":
    main(sys.argv)
