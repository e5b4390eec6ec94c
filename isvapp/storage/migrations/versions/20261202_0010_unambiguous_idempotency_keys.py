"""idempotency keys: a | or \\ inside a part is escaped with a \\

Keys were their parts joined with ``|``, so two orders whose ids differ only in where a ``|``
falls made one key, and got one instance. isvapp.domain.lifecycle.idempotency_key now escapes ``\\``
and ``|`` inside each part. A key whose parts hold neither character is unchanged (nearly every
stored key: the marketplace's ids are letters and digits), so only keys with such a part are
rewritten here, to what a retry of their request now computes. Their parts are recovered from
what is stored beside them: the instance's order ids (newInstance), the instance id and the
events of the instance or order (refreshInstance, upgradeInstance, orderNotify), the fixed
shape (getLicenseAsync: a 64-hex device digest last). A key whose parts cannot be told apart
by any of these is left as it was, and named in the migration's log.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 07:00:00

"""

import logging

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

answers = sa.table(
    "answers",
    sa.column("id", sa.Integer),
    sa.column("key", sa.String),
    sa.column("activity", sa.String),
    sa.column("instance_id", sa.String),
)
conflicts = sa.table("conflicts", sa.column("key", sa.String))
instances = sa.table(
    "instances",
    sa.column("instance_id", sa.String),
    sa.column("order_id", sa.String),
    sa.column("order_line_id", sa.String),
    sa.column("product_id", sa.String),
)
events = sa.table(
    "events",
    sa.column("instance_id", sa.String),
    sa.column("order_id", sa.String),
    sa.column("kind", sa.String),
    sa.column("payload", sa.JSON),
)

# A stored key's separators when no part holds a |: more means a part does.
SEPARATORS = {"refreshInstance": 4, "upgradeInstance": 3, "orderNotify": 3, "getLicenseAsync": 3}


def encode(parts):
    """isvapp.domain.lifecycle.idempotency_key, as of this revision (a migration keeps its own copy)."""
    return "|".join(str(part).replace("\\", "\\\\").replace("|", "\\|") for part in parts)


def decode(key):
    parts, part, chars = [], [], iter(key)
    for char in chars:
        if char == "\\":
            part.append(next(chars, ""))
        elif char == "|":
            parts.append("".join(part))
            part = []
        else:
            part.append(char)
    return parts + ["".join(part)]


def _split_rest(key, head, separators):
    """``key`` = head + the rest split at its ``separators`` |s, when it has exactly that many."""
    if not key.startswith(head):
        return None
    rest = key[len(head) :].split("|")
    return rest if len(rest) == separators + 1 else None


def _parts(conn, row):
    """The parts the stored key was made of, or None when they cannot be told apart."""
    key, activity, instance_id = row.key, row.activity, row.instance_id
    if activity == "newInstance":
        found = conn.execute(sa.select(instances.c.order_id).where(instances.c.instance_id == instance_id)).first()
        if found is not None:
            order = found[0]
            if key == f"newInstance|{order}":
                return ["newInstance", order]
            if key.startswith(f"newInstance|{order}|"):  # the rest is the line, or product:<id>
                return ["newInstance", order, key[len(f"newInstance|{order}|") :]]
        rest = _split_rest(key, "newInstance|", 0) or _split_rest(key, "newInstance|", 1)
        return ["newInstance", *rest] if rest else None
    if activity in ("refreshInstance", "upgradeInstance") and instance_id:
        head = f"{activity}|{instance_id}|"
        fields = (
            ("order_id", "order_line_id", "scene") if activity == "refreshInstance" else ("order_id", "order_line_id")
        )
        for (payload,) in conn.execute(sa.select(events.c.payload).where(events.c.instance_id == instance_id)):
            if isinstance(payload, dict) and payload.get("order_id"):
                parts = [activity, instance_id, *(payload.get(f) or "" for f in fields)]
                if "|".join(parts) == key:
                    return parts
        rest = _split_rest(key, head, len(fields) - 1)
        return [activity, instance_id, *rest] if rest else None
    if activity == "getLicenseAsync" and instance_id:
        head = f"getLicenseAsync|{instance_id}|"
        event_id, bar, device = key[len(head) :].rpartition("|")
        return ["getLicenseAsync", instance_id, event_id, device] if key.startswith(head) and bar else None
    if activity == "orderNotify":
        body, bar, digest = key.rpartition("|")
        if not bar or not body.startswith("orderNotify|"):
            return None
        for order_id, payload in conn.execute(
            sa.select(events.c.order_id, events.c.payload).where(events.c.kind == "order_notified")
        ):
            parts = ["orderNotify", order_id or "", (payload or {}).get("order_line_id") or "", digest]
            if "|".join(parts) == key:
                return parts
        rest = _split_rest(body, "orderNotify|", 1)
        return ["orderNotify", *rest, digest] if rest else None
    if activity in SEPARATORS:
        return None
    return key.split("|")  # an activity named nowhere above: no | inside its parts to lose


def _rewrite(conn, old, new):
    if conn.execute(sa.select(answers.c.id).where(answers.c.key == new)).first() is not None:
        log.warning("idempotency key %r not rewritten: %r is taken", old, new)
        return
    conn.execute(answers.update().where(answers.c.key == old).values(key=new))
    conn.execute(conflicts.update().where(conflicts.c.key == old).values(key=new))


def upgrade():
    conn = op.get_bind()
    key = answers.c.key
    separators = sa.func.length(key) - sa.func.length(sa.func.replace(key, "|", ""))
    suspect = sa.or_(
        key.contains("\\", autoescape=True),
        *(sa.and_(answers.c.activity == activity, separators > count) for activity, count in SEPARATORS.items()),
        sa.and_(
            answers.c.activity == "newInstance",
            answers.c.instance_id.in_(
                sa.select(instances.c.instance_id).where(
                    sa.or_(
                        *(
                            column.contains(char, autoescape=True)
                            for char in ("|", "\\")
                            for column in (instances.c.order_id, instances.c.order_line_id, instances.c.product_id)
                        )
                    )
                )
            ),
        ),
    )
    for row in conn.execute(sa.select(answers.c.key, answers.c.activity, answers.c.instance_id).where(suspect)).all():
        parts = _parts(conn, row)
        if parts is None:
            log.warning("idempotency key %r left as it was: its parts cannot be told apart", row.key)
        elif encode(parts) != row.key:
            _rewrite(conn, row.key, encode(parts))


def downgrade():
    conn = op.get_bind()
    for (key,) in conn.execute(sa.select(answers.c.key).where(answers.c.key.contains("\\", autoescape=True))).all():
        _rewrite(conn, key, "|".join(decode(key)))
