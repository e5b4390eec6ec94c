"""Filling in a G2 order's details from the order-query API, in a background job (§5.1).

G2 newInstance carries only ids, and the answer cannot wait for the marketplace; this job asks
for the order afterwards, stores customer, product, period and expiry on the instance, and
emits ``details_fetched`` for the provisioner. When it finally gives up the instance is marked
``failed`` (and ``details_failed`` emitted), visible to the merchant.

A simulated order (the merchant's own simulation, domain.simulation) is asked for once, and only
when the open API is configured (the fake marketplace knows any order; the real one does not know
the simulator's): a failure marks it ``simulated``, with no retry, no dead job, no alert, and the
go-live page's order-query result is left to the real orders.
"""

from flask import current_app
from sqlalchemy import select

from ..background import jobs, status
from ..extensions import db
from ..koo.times import read_time
from ..market import openapi
from ..settings import settings_of
from ..storage.models import DetailsState, Instance
from ..storage.transactions import write_transaction
from . import lifecycle

PERMANENT_CODES = {"MKT.0101", "MKT.0150", "MKT.9001"}
ERROR_LIMIT = 2000  # the marketplace's resultMsg (up to 1,024) and extra_info, as sent, fit


def _time(value):
    stamp, _ = read_time(value)
    return stamp.replace(tzinfo=None) if stamp else None


def buyer_of(order):
    """The buyer: under ``orderInfo.buyerInfo`` on the current order-query page; older answers
    put its fields on the order itself, which is read when buyerInfo is absent."""
    buyer = order.get("buyerInfo")
    return buyer if isinstance(buyer, dict) else order


def _products(line):
    info = line.get("productInfo")
    if isinstance(info, list):
        return info[0] if info and isinstance(info[0], dict) else {}
    return info if isinstance(info, dict) else {}


def apply_order(instance, order, order_line_id):
    """Copy what the order says onto the instance (only fields the order actually carries)."""
    lines = order.get("orderLine") or []
    line = next((item for item in lines if item.get("orderLineId") == order_line_id), lines[0] if lines else {})
    product, buyer = _products(line), buyer_of(order)
    values = {
        "charging_mode": line.get("chargingMode"),
        "period_type": line.get("periodType"),
        "period_number": line.get("periodNumber"),
        "expire_time": _time(line.get("expireTime")),
        "product_id": product.get("productId") or line.get("productId"),
        "sku_code": product.get("skuCode") or line.get("skuCode"),
        "customer_id": buyer.get("customerId"),
        "customer_name": buyer.get("customerName"),
        "user_id": buyer.get("userId"),
        "user_name": buyer.get("userName"),
    }
    for name, value in values.items():
        if value not in (None, ""):
            setattr(instance, name, str(value) if name in ("charging_mode", "period_type") else value)
    if line.get("trialFlag") is not None:
        instance.trial = str(line.get("trialFlag")) == "1"
    instance.extra = {**(instance.extra or {}), "order": order}
    instance.details_state = DetailsState.FETCHED


def fetch_order(job):
    settings = settings_of(current_app)
    simulated = bool(job.payload.get("simulated"))
    try:
        order = openapi.query_order(settings, job.payload["order_id"], job.payload.get("order_line_id"))
    except openapi.MarketError as error:
        if simulated:
            return _not_at_the_marketplace(job)
        status.report("order_query", {"ok": False, "error": str(error)[:ERROR_LIMIT]})
        if error.code in PERMANENT_CODES and job.attempts >= 3:
            raise jobs.Permanent(str(error)) from None
        raise
    if not simulated:
        status.report("order_query", {"ok": True})
    with write_transaction():
        for instance in _instances_of(job):
            apply_order(instance, order, job.payload.get("order_line_id"))
            lifecycle.emit("details_fetched", instance, order_id=job.payload["order_id"])
        if job.instance_id is None:  # orderNotify: the hooks get the order whatever it is for
            lifecycle.record_event("order_fetched", None, job.payload["order_id"], {"order": order})
        if not jobs.complete(job):
            raise RuntimeError("lost the job's lease; another worker finishes it")


def _not_at_the_marketplace(job):
    """A simulated order the marketplace could not give: its instances say so, and the job is done."""
    with write_transaction():
        for instance in _instances_of(job):
            if instance.details_state != DetailsState.FETCHED:
                instance.details_state = DetailsState.SIMULATED
        if not jobs.complete(job):
            raise RuntimeError("lost the job's lease; another worker finishes it")


def _instances_of(job):
    """The job's instance; for an orderNotify, whichever instances the order (line) made."""
    if job.instance_id:
        return [db.session.execute(select(Instance).where(Instance.instance_id == job.instance_id)).scalar_one()]
    where = [Instance.order_id == job.payload["order_id"]]
    if job.payload.get("order_line_id"):
        where.append(Instance.order_line_id == job.payload["order_line_id"])
    return db.session.execute(select(Instance).where(*where)).scalars().all()


def _gave_up(job):
    instance = db.session.execute(select(Instance).where(Instance.instance_id == job.instance_id)).scalar_one_or_none()
    if instance is not None and instance.details_state != DetailsState.FETCHED:
        instance.details_state = DetailsState.FAILED
        lifecycle.emit("details_failed", instance, order_id=job.payload.get("order_id"))


def register_jobs(registry):
    """The order-details fetch; a dead one marks the details failed (isvapp/__init__.py,
    register_jobs). A job of the domain's: it changes the instance."""
    registry.handler("fetch_order", fetch_order, on_dead=_gave_up)
