"""Hourly usage on time: one hour's usage of 10,000 pay-per-use instances, pushed by the worker.

The pay-per-use rules (sp_topic_0000120) want each hour's SDRs within the first 15 minutes of the
next hour. The records are put in place in bulk (outside the timing); then the worker's push job
runs in-process (``worker.work(until_idle=True)``) against the fake marketplace on loopback, which
verifies both signatures of every batch. The baseline, in the same run: the same records sent to
the same fake marketplace by the open-API client alone (batches of KOO_USAGE_PUSH_BATCH, 100, no database).

    python -m bench --only usagepush [--quick]
"""

import tempfile
import time
from datetime import timedelta
from pathlib import Path

from isvapp import create_app
from isvapp.background import usage, worker
from isvapp.extensions import db
from isvapp.market import openapi
from isvapp.standins.fakemarket import create_fake_market
from isvapp.standins.serving import Running
from isvapp.storage.models import Instance, UsageRecord, UsageState, utcnow
from isvapp.storage.schema import init_db
from isvapp.storage.transactions import write_transaction

AK, SK, KEY = "bench-ak", "bench-sk", "bench-key-0000-1111"
BUDGET_S = 15 * 60


def _fill(count, hour):
    rows = [
        dict(
            instance_id=f"ppu-{i:06d}",
            generation="G2",
            product_type="saas",
            state="ACTIVE",
            details_state="fetched",
            test_flag=False,
            trial=False,
            order_id=f"PPU{i:06d}",
            charging_mode="ON_DEMAND",
            created_at=hour,
            updated_at=hour,
        )
        for i in range(count)
    ]
    db.session.execute(Instance.__table__.insert(), rows)
    records = [
        dict(
            metering_sn=f"sn-{hour:%Y%m%d%H}-{i:06d}",
            instance_id=f"ppu-{i:06d}",
            usage_value="1.25",
            begin_time=hour,
            end_time=hour + timedelta(hours=1),
            record_time=hour + timedelta(hours=1),
            state=UsageState.PENDING,
            created_at=utcnow(),
            due_at=usage.due_at(hour + timedelta(hours=1)),
            late=False,
        )
        for i in range(count)
    ]
    db.session.execute(UsageRecord.__table__.insert(), records)
    db.session.commit()
    return records


def measure(quick, folder=None):
    count = 500 if quick else 10_000
    hour = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    with tempfile.TemporaryDirectory() as scratch, Running(create_fake_market(AK, SK, KEY)) as market:
        app = create_app(
            {
                "TESTING": False,
                "INSTANCE_PATH": scratch,
                "SECRET_KEY": "bench" * 8,
                "KOO_ACCESS_KEY": KEY,
                "KOO_AK": AK,
                "KOO_SK": SK,
                "KOO_API_BASE_URL": market.url,
                "SQLALCHEMY_DATABASE_URI": "sqlite:///" + str(Path(scratch) / "usage.sqlite"),
            }
        )
        with app.app_context():
            init_db()
            records = _fill(count, hour)
            with write_transaction():
                usage._wake()  # what usage.add does for each record: the one push job, queued
            started = time.perf_counter()
            worker.work(until_idle=True)
            pushed_s = time.perf_counter() - started
            pushed = db.session.execute(
                db.select(db.func.count()).select_from(UsageRecord).where(UsageRecord.state == UsageState.PUSHED)
            ).scalar_one()
            db.session.rollback()
            settings = app.extensions["isvapp"]
            sdrs = [
                {
                    **{k: r[k] for k in ("instance_id", "usage_value")},
                    "metering_sn": r["metering_sn"] + "-base",
                    "record_time": r["record_time"].strftime(usage.SDR_TIME),
                    "begin_time": r["begin_time"].strftime(usage.SDR_TIME),
                    "end_time": r["end_time"].strftime(usage.SDR_TIME),
                }
                for r in records
            ]
            started = time.perf_counter()
            size = settings.usage_push_batch
            for start in range(0, len(sdrs), size):
                openapi.push_usage(settings, sdrs[start : start + size])
            baseline_s = time.perf_counter() - started
        received = len(market.app.extensions["fake_market"].usage)
    return {
        "instances": count,
        "pushed": pushed,
        "received": received,
        "pushed_s": pushed_s,
        "baseline_s": baseline_s,
        "budget_s": BUDGET_S,
    }


def render(r):
    return [
        "## 10. Hourly usage pushed on time",
        "",
        "`bench/usagepush.py`: one hour's usage records of "
        f"{r['instances']:,} pay-per-use instances, put in place in bulk, then pushed by the worker's job "
        "(batches of 100, KOO_USAGE_PUSH_BATCH, both signatures) to the fake marketplace on loopback. The pay-per-use rules want "
        "them within 15 minutes of the next hour.",
        "",
        "| | seconds | share of the 15 minutes |",
        "| --- | --- | --- |",
        f"| the worker pushing {r['pushed']:,} records | {r['pushed_s']:.2f} s | {r['pushed_s'] / r['budget_s']:.4f} |",
        f"| baseline: the open-API client alone, same records, no database | {r['baseline_s']:.2f} s | "
        f"{r['baseline_s'] / r['budget_s']:.4f} |",
        "",
        f"The worker took **{r['pushed_s'] / r['baseline_s']:.2f}x** the client alone (its database work: "
        f"marking each batch sending, then pushed), and **{r['pushed_s'] / r['budget_s'] * 100:.2f}%** of the 15 "
        f"minutes; the fake marketplace received {r['received']:,} records in all.",
        "",
    ]
