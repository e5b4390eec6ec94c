"""The overview's pictures, as SVG rendered on the server by pygal.

No CDN and no script on the pages: each chart is its own SVG document loaded by an <img>, where
nothing in it can run, served with a Content-Security-Policy that allows only its inline styles.
Days are the merchant's (DISPLAY_TIMEZONE), counted in SQL with one GROUP BY per chart.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pygal
from pygal.style import Style
from sqlalchemy import func, literal_column, select

from ..extensions import db
from ..storage.models import Callback, Instance, InstanceState

DAYS = 30
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#1d2733",
    foreground_strong="#1d2733",
    foreground_subtle="#8a96a3",
    font_family='"Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", system-ui, sans-serif',
    colors=("#2e9d57", "#e0a030", "#c0392b", "#3b6fb6"),
)
RESULT_GROUPS = (("succeeded", ("000000",)), ("refused (signature, fields)", ("000001", "000002")))


def _local_day(column, zone):
    """The calendar day of a naive-UTC column in ``zone``, as SQL (offset of today: good enough
    for a 30-day picture; zones without daylight saving, like Asia/Shanghai, are exact)."""
    offset = datetime.now(zone).utcoffset() or timedelta(0)
    hours = int(offset.total_seconds() // 3600)
    if db.engine.dialect.name == "sqlite":
        return func.date(column, f"{hours:+d} hours")
    return func.date(column + literal_column(f"interval '{hours} hours'"))


def _by_day(statement):
    """{"YYYY-MM-DD": count} from (day, count) rows: SQLite's date() gives a string, PostgreSQL's a
    date, and the labels are strings."""
    return {str(day): count for day, count in db.session.execute(statement).all()}


def _days(zone, start, count):
    return [(start + timedelta(days=n)).isoformat() for n in range(count)]


def _render(chart, labels, series, gettext):
    """Whole-number ticks (a count of 0.1 orders means nothing), and, when every day is zero, no
    bars but the chart's ``no_data_text`` saying so."""
    chart.x_labels = [label[5:] for label in labels]  # MM-DD
    tallest = max((sum(day) for day in zip(*(values for _, values in series), strict=True)), default=0)
    if not tallest:
        series = [(name, [None] * len(values)) for name, values in series]
    else:
        chart.y_labels = whole_ticks(tallest)
        chart.range = (0, chart.y_labels[-1])
    for name, values in series:
        chart.add(gettext(name), values)
    return chart.render(is_unicode=True)


def whole_ticks(tallest, most=6):
    """0, step, 2 step ... up to the first tick at or above ``tallest``: a step of 1, 2 or 5 times
    a power of ten, the smallest that needs at most ``most`` steps."""
    step = next(m * 10**e for e in range(18) for m in (1, 2, 5) if -(-tallest // (m * 10**e)) <= most)
    return list(range(0, -(-tallest // step) * step + 1, step))


def _chart(kind, title, gettext, empty):
    return kind(
        js=[],
        disable_xml_declaration=True,
        width=720,
        height=260,
        style=STYLE,
        title=gettext(title),
        no_data_text=gettext(empty),
        legend_at_bottom=True,
        x_label_rotation=45,
        show_minor_x_labels=False,
        x_labels_major_every=5,
        print_values=False,
        include_x_axis=True,
        truncate_legend=-1,
    )


def callbacks_per_day(zone_name, gettext):
    zone = ZoneInfo(zone_name)
    today = datetime.now(zone).date()
    start = today - timedelta(days=DAYS - 1)
    since = datetime.combine(start, datetime.min.time(), zone).astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
    day = _local_day(Callback.received_at, zone)
    rows = db.session.execute(
        select(day, Callback.result_code, func.count())
        .where(Callback.received_at >= since)
        .group_by(day, Callback.result_code)
    ).all()
    labels = _days(zone, start, DAYS)
    counts = {name: dict.fromkeys(labels, 0) for name, _ in RESULT_GROUPS}
    counts["failed"] = dict.fromkeys(labels, 0)
    for when, code, n in rows:
        group = next((name for name, group_codes in RESULT_GROUPS if code in group_codes), "failed")
        if str(when) in counts[group]:
            counts[group][str(when)] += n
    series = [(name, list(counts[name].values())) for name in ("succeeded", "refused (signature, fields)", "failed")]
    return _render(
        _chart(pygal.StackedBar, "Callbacks per day, by result", gettext, "No callbacks in this period"),
        labels,
        series,
        gettext,
    )


def new_orders_per_day(zone_name, gettext):
    zone = ZoneInfo(zone_name)
    start = datetime.now(zone).date() - timedelta(days=DAYS - 1)
    since = datetime.combine(start, datetime.min.time(), zone).astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
    day = _local_day(Instance.created_at, zone)
    rows = _by_day(
        select(day, func.count()).where(Instance.created_at >= since, Instance.test_flag.is_(False)).group_by(day)
    )
    labels = _days(zone, start, DAYS)
    series = [("new orders (real)", [rows.get(label, 0) for label in labels])]
    return _render(
        _chart(pygal.Bar, "New orders per day", gettext, "No orders in this period"), labels, series, gettext
    )


def expiring_per_day(zone_name, gettext):
    zone = ZoneInfo(zone_name)
    start = datetime.now(zone).date()
    since = datetime.combine(start, datetime.min.time(), zone).astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
    day = _local_day(Instance.expire_time, zone)
    rows = _by_day(
        select(day, func.count())
        .where(
            Instance.expire_time >= since,
            Instance.expire_time < since + timedelta(days=DAYS),
            Instance.state.in_((InstanceState.ACTIVE, InstanceState.FROZEN)),
            Instance.test_flag.is_(False),
        )
        .group_by(day)
    )
    labels = _days(zone, start, DAYS)
    series = [("instances expiring", [rows.get(label, 0) for label in labels])]
    return _render(
        _chart(
            pygal.Bar, "Instances expiring per day, next 30 days", gettext, "No instance expires in the next 30 days"
        ),
        labels,
        series,
        gettext,
    )


CHARTS = {"callbacks": callbacks_per_day, "orders": new_orders_per_day, "expiring": expiring_per_day}
