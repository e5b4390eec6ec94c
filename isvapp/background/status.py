"""What the processes last reported, by name (StatusItem): read by the go-live page and the alerts.

Names in use: ``worker_heartbeat`` (the worker, every HEARTBEAT_S), ``order_query`` (the last
order-query API call: ok or its error), ``backup`` (the last `isvapp backup`).
"""

from sqlalchemy import select

from ..extensions import db
from ..storage.models import StatusItem, utcnow
from ..storage.transactions import write_transaction

HEARTBEAT_S = 15


def report(name, value, now=None):
    """Overwrite one status item, in a transaction of its own (it must not ride on another's fate)."""
    now = now or utcnow()
    with write_transaction(durable=False):
        row = db.session.get(StatusItem, name)
        if row is None:
            db.session.add(StatusItem(name=name, value=value, updated_at=now))
        else:
            row.value, row.updated_at = value, now


def read(*names):
    """{name: (value, updated_at)} for the names that were ever reported."""
    rows = db.session.execute(select(StatusItem).where(StatusItem.name.in_(names))).scalars()
    return {row.name: (row.value, row.updated_at) for row in rows}
