"""The merchant's notices: new real orders, releases, instances about to expire, a daily digest.

Each is an alert kind the merchant switches on (ALERT_NOTICES) and goes out through the alert
channels. The worker looks for them now and then (a periodic task), never the marketplace's
request: a new order costs the newInstance answer nothing. New orders and releases are grouped
in windows of ALERT_NOTICE_GROUP_MIN minutes and sent when the window closes, so a burst of 500
orders is one message that says 500. Messages are written in ALERT_LANGUAGE (zh or en) and name
orders, instances and products, never a buyer's credentials. Debugging orders (testFlag=1) are
not news.

Which notices are on: ALERT_NOTICES is the default; a choice made on the alerts page is kept in
the database (the status item "notices_choice"), shared by every host and worker, and wins over
the file until the page hands the choice back to it (:func:`in_force`).
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select

from ..extensions import db
from ..settings import settings_of
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
from . import alerts, status, usage

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


def enabled(settings):
    """The notices the file switches on (ALERT_NOTICES): the default, see :func:`in_force`."""
    chosen = set(settings.alerts.notices)
    return [k for k in KINDS if k in chosen]


CHOICE = "notices_choice"  # status item: the notices chosen on the alerts page


@dataclass
class InForce:
    """The notices on now, and where that comes from: ``source`` "page" (chosen on the alerts page
    ``at``, by the admin ``by``) or "file" (ALERT_NOTICES). ``since``: for a kind the page switched
    on, the last event id when it did, so what happened before is not news."""

    kinds: list
    source: str
    file_kinds: list
    at: object = None
    by: str | None = None
    since: dict = field(default_factory=dict)


def in_force(settings):
    """The notices on now: the page's choice when one was made, else the file's (ALERT_NOTICES)."""
    file_kinds = enabled(settings)
    value, at = status.read(CHOICE).get(CHOICE, (None, None))
    if not isinstance(value, dict):
        return InForce(file_kinds, "file", file_kinds)
    since = {k: int(v) for k, v in (value.get("since") or {}).items() if k in KINDS}
    if value.get("kinds") is None:  # handed back to the file on the page (use_file)
        return InForce(file_kinds, "file", file_kinds, at, value.get("by"), since)
    chosen = set(value["kinds"])
    return InForce([k for k in KINDS if k in chosen], "page", file_kinds, at, value.get("by"), since)


def choose(settings, kinds, by, now=None):
    """Keep the notices chosen on the alerts page (unknown names are ignored), for every host.
    ``kinds`` None hands the choice back to the file (ALERT_NOTICES). Either way, a kind that is
    switched on by it (off before) counts events from now on, not the ones it missed."""
    before = in_force(settings)
    after = enabled(settings) if kinds is None else [k for k in KINDS if k in set(kinds)]
    last = db.session.execute(select(func.max(Event.id))).scalar() or 0
    db.session.rollback()
    since = {k: before.since[k] for k in after if k in before.since and k in before.kinds}
    since.update({k: last for k in after if k not in before.kinds})
    status.report(CHOICE, {"kinds": kinds if kinds is None else after, "by": str(by)[:64], "since": since}, now=now)
    return in_force(settings)


def _zone(settings):
    return ZoneInfo(alerts.display_zone(settings))


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


def render(alert, settings):
    """A notice's (subject, text) as the channels send it: ALERT_LANGUAGE, DISPLAY_TIMEZONE."""
    return alerts.message_for_channels(alert, settings)


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
    settings = settings_of(current_app)
    force = in_force(settings)
    db.session.rollback()
    chosen = force.kinds
    if not chosen:
        return None
    now = now or utcnow()
    found = {}
    if "new_order" in chosen or "release" in chosen:
        found.update(_events(settings, chosen, now, force.since))
    if "expiring" in chosen:
        found["expiring"] = _expiring(settings, now)
    if "digest" in chosen:
        found["digest"] = _digest(settings, now)
    return found


def _events(settings, chosen, now, since=None):
    """New real orders and releases since the last scan, each kind one grouped notice. The cursor
    (the last event looked at) moves in the transaction that raises the notices, under a lock on
    its row: an event is counted once, by one worker. ``since``: a kind's events up to this id are
    not news (it was switched on after them, on the alerts page)."""
    since = since or {}
    group = settings.alerts.notice_group_min
    counts = {}
    # A look first, with no write lock: most ticks find no event past the cursor.
    last = db.session.execute(select(func.max(Event.id))).scalar() or 0
    seen = db.session.execute(select(StatusItem.value).where(StatusItem.name == CURSOR)).scalar()
    db.session.rollback()
    if seen is not None and int(seen.get("event") or 0) >= last:
        return counts
    with write_transaction():
        last = db.session.execute(select(func.max(Event.id))).scalar() or 0
        first = last
        if seen is None:
            # The first scan starts where each kind was switched on: on the alerts page, at its
            # ``since`` (events after it are news, even those that came before this scan); in the
            # file, now. What happened before notices were on is not news.
            since = {notice: min(since.get(notice, last), last) for notice in EVENT_KINDS.values()}
            first = min((since[notice] for notice in EVENT_KINDS.values() if notice in chosen), default=last)
        insert_ignore(StatusItem, name=CURSOR, value={"event": first}, updated_at=now)
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
            names = [
                f"{r.order_id}" + (f" ({r.product_id})" if r.product_id else "")
                for r in rows
                if r.kind == kind and r.id > since.get(notice, 0)
            ]
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


def _expiring(settings, now):
    """Once a day: the live, real instances that expire within ALERT_EXPIRING_DAYS days."""
    if _already("expiring", now, DAY_MIN):
        return None
    days = settings.alerts.expiring_days
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


def _digest(settings, now):
    """Once a day, from ALERT_DIGEST_HOUR (in DISPLAY_TIMEZONE): the last 24 hours in figures."""
    local = now.replace(tzinfo=UTC).astimezone(_zone(settings))
    if local.hour < settings.alerts.digest_hour or _already("digest", now, DAY_MIN):
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
