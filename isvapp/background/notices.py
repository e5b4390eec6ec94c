"""The merchant's notices: new real orders, releases, instances about to expire, a daily digest.

Each is an alert kind the merchant switches on (ALERT_NOTICES) and goes out through the alert
channels. The worker looks for them now and then (a periodic task), never the marketplace's
request: a new order costs the newInstance answer nothing. New orders and releases are grouped
in windows of ALERT_NOTICE_GROUP_MIN minutes and sent when the window closes, so a burst of 500
orders is one message that says 500. Messages are written in ALERT_LANGUAGE (zh or en) and name
orders, instances and products, never a buyer's credentials. Debugging orders (testFlag=1) are
not news.
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select

from ..extensions import db
from ..storage.models import (
    Alert,
    Callback,
    Event,
    Instance,
    InstanceState,
    StatusItem,
    utcnow,
)
from ..storage.statements import insert_ignore
from ..storage.transactions import write_transaction
from ..texts import N_, Text
from . import alerts, usage

KINDS = ("new_order", "release", "expiring", "digest")
EVENT_KINDS = {"created": "new_order", "released": "release"}
CURSOR = "notices_cursor"
SCAN_LIMIT = 5000  # events looked at per scan; the rest wait for the next one
SAMPLE = 5  # order ids named in a message
DAY_MIN = 24 * 60

# kind -> (subject, text): msgids, in Chinese in the catalog (isvapp/translations) like the pages'.
MESSAGES = {
    "new_order": (
        N_("%(n)s new order(s)"),
        N_(
            "%(n)s new real order(s) between %(start_at)s and %(end_at)s (%(zone)s). The first: %(sample)s. "
            "The instances are on the merchant's pages (Instances)."
        ),
    ),
    "release": (
        N_("%(n)s instance(s) released"),
        N_(
            "%(n)s real instance(s) were released between %(start_at)s and %(end_at)s (%(zone)s). The first: %(sample)s."
        ),
    ),
    "expiring": (
        N_("%(n)s instance(s) expire within %(days)s days"),
        N_(
            "%(n)s live instance(s) expire within %(days)s days. The first: %(sample)s. Buyers renew in the "
            "marketplace; the Instances page filters by expiry."
        ),
    ),
    "digest": (
        N_("Daily digest: %(orders)s new order(s), %(releases)s release(s)"),
        N_(
            "The last 24 hours: %(orders)s new real order(s), %(releases)s release(s), %(failed)s marketplace "
            "call(s) answered with an error, %(usage)s usage record(s) pushed (%(late)s late), %(alerts)s "
            "alert(s). %(live)s instance(s) are live."
        ),
    ),
}


def enabled(config):
    chosen = {k.strip() for k in str(config.get("ALERT_NOTICES") or "").replace(" ", ",").split(",") if k.strip()}
    return [k for k in KINDS if k in chosen]


def _zone(config):
    try:
        return ZoneInfo(str(config.get("DISPLAY_TIMEZONE") or "UTC"))
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _sample(names, count):
    """The first orders a notice names, and how many more there were: a Text, rendered with the
    notice (the names are data, the "and N more" words)."""
    shown = Text("%(names)s", {"names": ", ".join(names[:SAMPLE])})
    if count <= SAMPLE:
        return shown
    return Text(N_("%(sample)s and %(more)s more"), {"sample": shown, "more": count - SAMPLE})


def _more(alert, params, gettext):
    """What a notice says beyond what it was raised with: the window's whole count, its bounds, and
    a sample of the orders, written when the notice is read (sent, or shown on a page)."""
    values = {"n": alert.count}
    if alert.kind in EVENT_KINDS.values():
        start = _window_start(alert.window)
        minutes = int(alert.window.rsplit("/", 1)[1].rstrip("m"))
        values.update(start_at=start, end_at=start + timedelta(minutes=minutes))
    if alert.kind != "digest":
        values["sample"] = _sample(params.get("names") or [], alert.count)
    return values


def render(alert, config):
    """A notice's (subject, text) as the channels send it: ALERT_LANGUAGE, DISPLAY_TIMEZONE."""
    return alerts.message_for_channels(alert, config)


def _window_start(window):
    return datetime.strptime(window.split("/")[0], "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)


def register_jobs(registry):
    """The scan (a periodic task) and each notice's message, written when it is read
    (isvapp/__init__.py, register_jobs)."""
    registry.periodic(scan)
    for kind in KINDS:
        registry.renderer(kind, _more, legacy=MESSAGES[kind])


def scan(now=None):
    """The worker's look for news (about every 30 s); nothing when no notice is switched on."""
    config = current_app.config
    chosen = enabled(config)
    if not chosen:
        return None
    now = now or utcnow()
    found = {}
    if "new_order" in chosen or "release" in chosen:
        found.update(_events(config, chosen, now))
    if "expiring" in chosen:
        found["expiring"] = _expiring(config, now)
    if "digest" in chosen:
        found["digest"] = _digest(config, now)
    return found


def _events(config, chosen, now):
    """New real orders and releases since the last scan, each kind one grouped notice. The cursor
    (the last event looked at) moves in the transaction that raises the notices, under a lock on
    its row: an event is counted once, by one worker."""
    group = int(config.get("ALERT_NOTICE_GROUP_MIN") or 10)
    counts = {}
    # A look first, with no write lock: most ticks find no event past the cursor.
    last = db.session.execute(select(func.max(Event.id))).scalar() or 0
    seen = db.session.execute(select(StatusItem.value).where(StatusItem.name == CURSOR)).scalar()
    db.session.rollback()
    if seen is not None and int(seen.get("event") or 0) >= last:
        return counts
    with write_transaction():
        last = db.session.execute(select(func.max(Event.id))).scalar() or 0
        # The first scan starts from now: what happened before notices were on is not news.
        insert_ignore(StatusItem, name=CURSOR, value={"event": last}, updated_at=now)
        cursor = db.session.execute(select(StatusItem).where(StatusItem.name == CURSOR).with_for_update()).scalar_one()
        start = int((cursor.value or {}).get("event") or 0)
        rows = db.session.execute(
            select(Event.id, Event.kind, Event.order_id, Instance.product_id)
            .join(Instance, Instance.instance_id == Event.instance_id)
            .where(Event.id > start, Event.kind.in_(tuple(EVENT_KINDS)), Instance.test_flag.is_(False))
            .order_by(Event.id)
            .limit(SCAN_LIMIT)
        ).all()
        upto = rows[-1].id if len(rows) == SCAN_LIMIT else last
        for kind, notice in EVENT_KINDS.items():
            if notice not in chosen:
                continue
            names = [f"{r.order_id}" + (f" ({r.product_id})" if r.product_id else "") for r in rows if r.kind == kind]
            if names:
                alerts.raise_alert(
                    notice,
                    *MESSAGES[notice],
                    params={"names": names[:SAMPLE]},
                    now=now,
                    count=len(names),
                    window_min=group,
                    hold=True,
                )
                counts[notice] = len(names)
        cursor.value, cursor.updated_at = {"event": max(upto, start)}, now
    return counts


def _already(kind, now, window_min):
    window = alerts.window_key(now, window_min)
    found = db.session.execute(select(Alert.id).where(Alert.kind == kind, Alert.window == window)).first()
    db.session.rollback()
    return found is not None


def _expiring(config, now):
    """Once a day: the live, real instances that expire within ALERT_EXPIRING_DAYS days."""
    if _already("expiring", now, DAY_MIN):
        return None
    days = int(config.get("ALERT_EXPIRING_DAYS") or 7)
    where = (
        Instance.state.in_((InstanceState.ACTIVE, InstanceState.FROZEN)),
        Instance.test_flag.is_(False),
        Instance.expire_time.is_not(None),
        Instance.expire_time > now,
        Instance.expire_time <= now + timedelta(days=days),
    )
    with write_transaction():
        count = db.session.execute(select(func.count()).select_from(Instance).where(*where)).scalar_one()
        if not count:
            return 0
        names = (
            db.session.execute(select(Instance.instance_id).where(*where).order_by(Instance.expire_time).limit(SAMPLE))
            .scalars()
            .all()
        )
        alerts.raise_alert(
            "expiring",
            *MESSAGES["expiring"],
            params={"names": list(names), "days": days},
            now=now,
            count=count,
            window_min=DAY_MIN,
        )
    return count


def _digest(config, now):
    """Once a day, from ALERT_DIGEST_HOUR (in DISPLAY_TIMEZONE): the last 24 hours in figures."""
    local = now.replace(tzinfo=UTC).astimezone(_zone(config))
    hour = config.get("ALERT_DIGEST_HOUR")
    if local.hour < int(9 if hour in (None, "") else hour) or _already("digest", now, DAY_MIN):
        return None
    since = now - timedelta(days=1)
    real_events = (
        select(func.count())
        .select_from(Event)
        .join(Instance, Instance.instance_id == Event.instance_id)
        .where(Event.created_at > since, Instance.test_flag.is_(False))
    )
    with write_transaction():
        pushed, late = usage.last_day(now)
        figures = {
            "orders": db.session.execute(real_events.where(Event.kind == "created")).scalar_one(),
            "releases": db.session.execute(real_events.where(Event.kind == "released")).scalar_one(),
            "failed": db.session.execute(
                select(func.count())
                .select_from(Callback)
                .where(Callback.received_at > since, Callback.result_code != "000000", Callback.test_flag.is_(False))
            ).scalar_one(),
            "usage": pushed,
            "late": late,
            "alerts": db.session.execute(
                select(func.count()).select_from(Alert).where(Alert.created_at > since, Alert.kind.not_in(KINDS))
            ).scalar_one(),
            "live": db.session.execute(
                select(func.count())
                .select_from(Instance)
                .where(Instance.state == InstanceState.ACTIVE, Instance.test_flag.is_(False))
            ).scalar_one(),
        }
        alerts.raise_alert("digest", *MESSAGES["digest"], params=figures, now=now, window_min=DAY_MIN)
    return figures
