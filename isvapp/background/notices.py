"""The merchant's notices: new real orders, releases, instances about to expire, a daily digest.

Each is an alert kind the merchant switches on (ALERT_NOTICES) and goes out through the alert
channels. The worker looks for them now and then (a periodic task), never the marketplace's
request: a new order costs the newInstance answer nothing. New orders and releases are grouped
in windows of ALERT_NOTICE_GROUP_MIN minutes and sent when the window closes, so a burst of 500
orders is one message that says 500. Messages are written in ALERT_LANGUAGE (zh or en) and name
orders, instances and products, never a buyer's credentials. Debugging orders (testFlag=1) are
not news.
"""

import json
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
from . import alerts, jobs, usage

KINDS = ("new_order", "release", "expiring", "digest")
EVENT_KINDS = {"created": "new_order", "released": "release"}
CURSOR = "notices_cursor"
SCAN_LIMIT = 5000  # events looked at per scan; the rest wait for the next one
SAMPLE = 5  # order ids named in a message
DAY_MIN = 24 * 60

TEXTS = {
    "en": {
        "new_order": (
            "{n} new order(s)",
            "{n} new real order(s) between {start} and {end} ({zone}). The first: "
            "{sample}. The instances are on the merchant's pages (Instances).",
        ),
        "release": (
            "{n} instance(s) released",
            "{n} real instance(s) were released between {start} and {end} ({zone}). The first: {sample}.",
        ),
        "expiring": (
            "{n} instance(s) expire within {days} days",
            "{n} live instance(s) expire within {days} "
            "days. The first: {sample}. Buyers renew in the marketplace; the Instances page filters by "
            "expiry.",
        ),
        "digest": (
            "Daily digest: {orders} new order(s), {releases} release(s)",
            "The last 24 hours: {orders} new real order(s), {releases} release(s), {failed} marketplace "
            "call(s) answered with an error, {usage} usage record(s) pushed ({late} late), {alerts} "
            "alert(s). {live} instance(s) are live.",
        ),
    },
    "zh": {
        "new_order": (
            "{n} 个新订单",
            "{start} 至 {end}（{zone}）收到 {n} 个真实新订单（不含调测订单）。"
            "最早的：{sample}。实例见商家管理页面的“实例”。",
        ),
        "release": ("{n} 个实例已释放", "{start} 至 {end}（{zone}）有 {n} 个真实实例被释放。最早的：{sample}。"),
        "expiring": (
            "{n} 个实例将在 {days} 天内到期",
            "{n} 个使用中的实例将在 {days} 天内到期。最早的：{sample}。买家在云商店续费；“实例”页面可按到期时间筛选。",
        ),
        "digest": (
            "每日摘要：{orders} 个新订单，{releases} 个释放",
            "最近 24 小时：{orders} 个真实新订单，{releases} 个释放，{failed} 次云商店调用返回错误，"
            "已推送 {usage} 条使用量记录（其中 {late} 条迟到），{alerts} 条告警。当前 {live} 个实例在使用中。",
        ),
    },
}
MORE = {"en": "{sample} and {more} more", "zh": "{sample} 等 {more} 个"}


def enabled(config):
    chosen = {k.strip() for k in str(config.get("ALERT_NOTICES") or "").replace(" ", ",").split(",") if k.strip()}
    return [k for k in KINDS if k in chosen]


def _language(config):
    return "zh" if str(config.get("ALERT_LANGUAGE") or "zh").lower().startswith("zh") else "en"


def _zone(config):
    try:
        return ZoneInfo(str(config.get("DISPLAY_TIMEZONE") or "UTC"))
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _sample(names, count, language):
    shown = ", ".join(alerts.inert(name) for name in names[:SAMPLE])
    return MORE[language].format(sample=shown, more=count - SAMPLE) if count > SAMPLE else shown


def render(alert, config):
    """The message for a window's notice, written when it is sent: the window's whole count."""
    language, zone = _language(config), _zone(config)
    subject, body = TEXTS[language][alert.kind]
    values = {**_stored(alert), "n": alert.count}
    if alert.kind in EVENT_KINDS.values():
        start = _window_start(alert.window)
        minutes = int(alert.window.rsplit("/", 1)[1].rstrip("m"))
        values.update(
            start=start.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            end=(start + timedelta(minutes=minutes)).astimezone(zone).strftime("%H:%M"),
            zone=str(zone),
            sample=_sample(values.get("names", []), alert.count, language),
        )
    elif alert.kind == "expiring":
        values["sample"] = _sample(values.get("names", []), alert.count, language)
    return subject.format(**values), body.format(**values)


def _stored(alert):
    """What the notice was raised with: kept as JSON in the alert's text (names, figures)."""
    try:
        found = json.loads(alert.text)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _window_start(window):
    return datetime.strptime(window.split("/")[0], "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)


for _kind in KINDS:
    alerts.RENDERERS[_kind] = render


@jobs.periodic
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
                    notice,
                    json.dumps({"names": names[:SAMPLE]}, ensure_ascii=False),
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
            "expiring",
            json.dumps({"names": list(names), "days": days}),
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
        alerts.raise_alert("digest", "digest", json.dumps(figures), now=now, window_min=DAY_MIN)
    return figures
