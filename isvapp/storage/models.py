"""Tables and their unique constraints: the constraints are what make callbacks idempotent.

Times are stored as naive UTC datetimes (SQLite has no time zones); pages convert on display.
"""

from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Model


def utcnow():
    return datetime.now(UTC).replace(tzinfo=None)


class InstanceState:
    ACTIVE = "ACTIVE"
    FROZEN = "FROZEN"  # updateInstanceStatus FREEZE / G1 instanceStatus FREEZE: lifted by UNFREEZE
    EXPIRED = "EXPIRED"  # G1 expireInstance: lifted by a renewal
    RELEASED = "RELEASED"  # final; the row is kept
    ALL = (ACTIVE, FROZEN, EXPIRED, RELEASED)


class DetailsState:
    PENDING = "pending"  # G2: order details still to be fetched from the order-query API
    FETCHED = "fetched"
    INLINE = "inline"  # G1: the request carried them
    FAILED = "failed"
    # Not fetched: a simulated order (Instance.simulated), which the marketplace does not know.
    SIMULATED = "simulated"


def _where_set(name, column):
    """An index of the rows where ``column`` is set (a partial index).

    A G2 newInstance knows no customer or product yet (the order details bring them, in a job), so
    the order's own write transaction skips these indexes entirely: each index it touches is one
    more page written and synced per order (bench/NOTES.md). Every query on these columns compares
    them with a value, which tells both databases that the column is set, so the index still serves it.
    """
    where = text(f"{column} IS NOT NULL")
    return Index(name, column, sqlite_where=where, postgresql_where=where)


class Instance(Model):
    """The merchant-side resource for one order line (or one pay-per-use billing item)."""

    __tablename__ = "instances"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(64), unique=True)
    generation: Mapped[str] = mapped_column(String(8))  # a koo.generations.Generation value
    product_type: Mapped[str] = mapped_column(String(16), default="saas")  # saas | license
    state: Mapped[str] = mapped_column(String(16), default=InstanceState.ACTIVE)
    details_state: Mapped[str] = mapped_column(String(16), default=DetailsState.PENDING)
    test_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    # Made by the merchant's own simulation (isvapp.koo.simulated), not by the marketplace: the
    # marketplace does not know its order, so its details are not fetched (domain.orderdetails).
    simulated: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    trial: Mapped[bool] = mapped_column(Boolean, default=False)
    order_id: Mapped[str] = mapped_column(String(64))
    order_line_id: Mapped[str | None] = mapped_column(String(64))
    product_id: Mapped[str | None] = mapped_column(String(64))
    sku_code: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(100))
    customer_name: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[str | None] = mapped_column(String(100))
    user_name: Mapped[str | None] = mapped_column(String(255))
    charging_mode: Mapped[str | None] = mapped_column(String(32))
    period_type: Mapped[str | None] = mapped_column(String(32))
    period_number: Mapped[int | None] = mapped_column(Integer)
    expire_time: Mapped[datetime | None] = mapped_column(DateTime)
    extra: Mapped[dict | None] = mapped_column(JSON)  # saasExtendParams, order details, buyer fields
    front_end_url: Mapped[str | None] = mapped_column(String(512))
    admin_url: Mapped[str | None] = mapped_column(String(512))
    admin_user: Mapped[str | None] = mapped_column(String(255))
    admin_password_sealed: Mapped[str | None] = mapped_column(Text)  # vault.seal(); never shown unasked
    memo: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(DateTime)
    # koo.signing.key_fingerprint of the key that created it; None: made before keys owned rows
    key_fingerprint: Mapped[str | None] = mapped_column(String(24))

    __table_args__ = (
        Index("ix_instances_state_expire", "state", "expire_time"),
        Index("ix_instances_order", "order_id", "order_line_id"),
        Index("ix_instances_created", "created_at"),
        _where_set("ix_instances_customer", "customer_id"),
        _where_set("ix_instances_customer_name", "customer_name"),
        Index("ix_instances_test_id", "test_flag", "id"),
        _where_set("ix_instances_product", "product_id"),
    )


class Answer(Model):
    """The first answer to an idempotent request, replayed byte for byte on every repeat."""

    __tablename__ = "answers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(400), unique=True)  # activity|id|id...
    activity: Mapped[str] = mapped_column(String(32))
    instance_id: Mapped[str | None] = mapped_column(String(64))
    request_digest: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Conflict(Model):
    """A repeat of an idempotency key with a different payload: replayed, and kept for the merchant."""

    __tablename__ = "conflicts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(400), index=True)
    activity: Mapped[str] = mapped_column(String(32))
    instance_id: Mapped[str | None] = mapped_column(String(64))
    first_digest: Mapped[str] = mapped_column(String(64))
    request_digest: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict | None] = mapped_column(JSON)  # redacted
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class SignedRequest(Model):
    """Signed requests seen inside their window, with the answer they got: the replay store.

    ``token`` is the request's signed identity (G2/Kit: nonce and timestamp joined, so a re-cut of
    the same signed bytes is the same entry; G1: the authToken). An identical resend (same
    ``fingerprint``: URL, signature and body) gets ``answer`` again byte for byte; a different
    request with the same identity is a replay.
    """

    __tablename__ = "signed_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))  # a koo.generations.ReplayScope value
    token: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(128))  # a nonce reused with another timestamp is a replay too
    fingerprint: Mapped[str] = mapped_column(String(64))
    answer: Mapped[bytes] = mapped_column(LargeBinary)
    seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (
        UniqueConstraint("scope", "token", name="uq_signed_requests_scope_token"),
        UniqueConstraint("scope", "nonce", name="uq_signed_requests_scope_nonce"),
    )


class Event(Model):
    """A lifecycle event, written in the same transaction as the state change (an outbox).

    Background jobs (order details, provisioning hooks) are derived from these, and the event id
    is what a provisioning hook receives to stay idempotent.
    """

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    instance_id: Mapped[str | None] = mapped_column(String(64), index=True)
    order_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Callback(Model):
    """Every marketplace request and the answer it got, secrets redacted."""

    __tablename__ = "callbacks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(255))
    generation: Mapped[str | None] = mapped_column(String(8))
    activity: Mapped[str | None] = mapped_column(String(32))
    order_id: Mapped[str | None] = mapped_column(String(64))
    order_line_id: Mapped[str | None] = mapped_column(String(64))
    instance_id: Mapped[str | None] = mapped_column(String(255))
    business_id: Mapped[str | None] = mapped_column(String(64))
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    test_flag: Mapped[bool | None] = mapped_column(Boolean)
    # A verified request carrying the simulator's mark: the merchant's own simulation, which the
    # go-live page shows apart from the Seller Console's debugging (isvapp.koo.simulated).
    simulated: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    result_code: Mapped[str | None] = mapped_column(String(8))
    result_msg: Mapped[str | None] = mapped_column(String(255))
    duration_ms: Mapped[float | None] = mapped_column()
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(String(255))
    # What the request got wrong in shape but was accepted anyway (isvapp.koo.oddities), one a line,
    # in English; and the same notes as msgids with their parameters, which the pages translate.
    warnings: Mapped[str | None] = mapped_column(Text)
    warning_notes: Mapped[list | None] = mapped_column(JSON)
    key_fingerprint: Mapped[str | None] = mapped_column(String(24))  # which configured key verified it
    clock_skew_ms: Mapped[int | None] = mapped_column(Integer)  # this server's clock minus the request's timestamp
    https: Mapped[bool | None] = mapped_column(Boolean)  # arrived over https (directly or per the proxy)
    # The answer's X-Request-Id, also on the request's log lines (isvapp/monitoring.py): not indexed,
    # a log line leads here through the row's time.
    request_id: Mapped[str | None] = mapped_column(String(64))
    request: Mapped[str | None] = mapped_column(Text)
    response: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_callbacks_received", "received_at"),
        Index("ix_callbacks_activity_received", "activity", "received_at"),
        # Only the answers that were not success, newest last: the usual answer writes no page here,
        # and every query of it looks for recent failures (a filter on one failing code names both
        # terms), so the newest come first without sorting them all.
        Index(
            "ix_callbacks_failed_received",
            "received_at",
            sqlite_where=text("result_code <> '000000'"),
            postgresql_where=text("result_code <> '000000'"),
        ),
        Index("ix_callbacks_instance", "instance_id"),
        Index("ix_callbacks_order", "order_id"),
    )


class LicenseState:
    ACTIVE = "ACTIVE"
    SUPERSEDED = "SUPERSEDED"  # a renewal issued a newer document for the same device
    EXPIRED = "EXPIRED"
    RELEASED = "RELEASED"
    ALL = (ACTIVE, SUPERSEDED, EXPIRED, RELEASED)


class License(Model):
    """One issued license document; the instance row carries the order and the lifecycle state.

    Documents are never rewritten: a renewal issues a new one and marks the old one superseded,
    so the text a customer received can always be looked up again.
    """

    __tablename__ = "licenses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    license_id: Mapped[str] = mapped_column(String(36), unique=True)
    instance_id: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str | None] = mapped_column(String(64))
    event_id: Mapped[str | None] = mapped_column(String(64))  # getLicenseAsync's eventId
    fingerprint: Mapped[str | None] = mapped_column(String(1024))
    state: Mapped[str] = mapped_column(String(16), default=LicenseState.ACTIVE)
    test_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    document: Mapped[str] = mapped_column(Text)
    effective_time: Mapped[datetime | None] = mapped_column(DateTime)
    expire_time: Mapped[datetime | None] = mapped_column(DateTime)
    issued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    key_fingerprint: Mapped[str | None] = mapped_column(String(24))  # the key that issued it
    # Its upload to the marketplace (getLicenseAsync and the renewals of its documents): None when
    # the document travels in the answer only (License-G1, License-2.0 without an eventId).
    upload_state: Mapped[str | None] = mapped_column(String(16))
    uploaded_at: Mapped[datetime | None] = mapped_column(DateTime)
    upload_error: Mapped[str | None] = mapped_column(Text)  # the marketplace's words as sent, and isvapp's

    __table_args__ = (
        Index("ix_licenses_instance", "instance_id", "issued_at"),
        Index("ix_licenses_state_expire", "state", "expire_time"),
        Index("ix_licenses_issued", "issued_at"),
        Index("ix_licenses_order", "order_id"),
    )


class UploadState:
    PENDING = "pending"  # an upload job is queued or retrying
    UPLOADED = "uploaded"
    FAILED = "failed"  # the job is dead: an alert was raised, `isvapp jobs retry` sends it again
    # Not uploaded: a simulated order's document, whose eventId the marketplace never sent.
    SIMULATED = "simulated"
    ALL = (PENDING, UPLOADED, FAILED, SIMULATED)


class LicenseCode(Model):
    """A license code (授权码) the marketplace issued to a buyer, as the merchant's installed software
    last saw it through the relay (isvapp/productapi/relay/). The marketplace owns the code and its
    state: this row is the last verified answer, which the relay serves during an outage."""

    __tablename__ = "license_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str | None] = mapped_column(String(32))  # the marketplace's status, as sent
    expire_time: Mapped[datetime | None] = mapped_column(DateTime)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime)
    activated_from: Mapped[str | None] = mapped_column(String(64))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime)
    verified_from: Mapped[str | None] = mapped_column(String(64))
    usage_reported_at: Mapped[datetime | None] = mapped_column(DateTime)
    usage_reports: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Last activated by the merchant's simulation (the relay call carried isvapp.koo.simulated's
    # mark): its activation, verifications and usage reports count as "simulated here".
    simulated: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class LicenseInstallation(Model):
    """One installation of the merchant's software, made at activation: only its secret's SHA-256
    is kept; the secret is given to the software once."""

    __tablename__ = "license_installations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    installation_id: Mapped[str] = mapped_column(String(32), unique=True)
    code: Mapped[str] = mapped_column(String(64))
    secret_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_from: Mapped[str | None] = mapped_column(String(64))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (Index("ix_license_installations_code", "code"),)


class RelayBudget(Model):
    """Relay calls per license code and minute (any worker, any host): one row per code, reused."""

    __tablename__ = "relay_budgets"
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    minute: Mapped[datetime] = mapped_column(DateTime)
    count: Mapped[int] = mapped_column(Integer, default=0)


# --- joint-operation (Kit) sync: keyed by (instance, tenant, ...) as the reference's idempotency
# rules are; instance_key is "" when the marketplace sends no instance (credential applications).


class KitState:
    ACTIVE = "ACTIVE"
    DELETED = "DELETED"  # tenants and apps are kept when deleted, like released instances
    REVOKED = "REVOKED"  # a user whose authorisation was revoked (authSync flag 3)


class Tenant(Model):
    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_key: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str] = mapped_column(String(64))
    tenant_code: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))
    domain_name: Mapped[str | None] = mapped_column(String(255))
    order_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=KitState.ACTIVE)
    test_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The Kit key that created it; its apps, users and departments belong to that key too.
    key_fingerprint: Mapped[str | None] = mapped_column(String(24))
    __table_args__ = (
        UniqueConstraint("instance_key", "tenant_id", name="uq_tenants_instance_tenant"),
        Index("ix_tenants_tenant", "tenant_id"),
        Index("ix_tenants_updated", "updated_at"),
    )


class KitApp(Model):
    __tablename__ = "kit_apps"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_key: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str] = mapped_column(String(64))
    app_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))
    client_id: Mapped[str | None] = mapped_column(String(255))
    client_secret_sealed: Mapped[str | None] = mapped_column(Text)  # vault.seal(); never shown
    # Where the buyer's login hands the signed-in user over (the merchant sets it on the tenant's page);
    # None: LOGIN_HANDOFF_URL.
    handoff_url: Mapped[str | None] = mapped_column(String(2048))
    order_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=KitState.ACTIVE)
    test_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (
        UniqueConstraint("instance_key", "tenant_id", "app_id", name="uq_kit_apps_key"),
        Index("ix_kit_apps_tenant", "tenant_id"),
    )


class KitUser(Model):
    __tablename__ = "kit_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_key: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str] = mapped_column(String(64))
    app_id: Mapped[str] = mapped_column(String(64))
    user_name: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    position: Mapped[str | None] = mapped_column(String(255))
    org_code: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(16))
    enable: Mapped[bool] = mapped_column(Boolean, default=True)
    employee_code: Mapped[str | None] = mapped_column(String(64))
    employee_type: Mapped[str | None] = mapped_column(String(16))
    extra: Mapped[dict | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=KitState.ACTIVE)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)  # the buyer's login (isvapp.login)
    __table_args__ = (
        UniqueConstraint("instance_key", "tenant_id", "app_id", "user_name", name="uq_kit_users_key"),
        Index("ix_kit_users_tenant", "tenant_id", "app_id"),
        Index("ix_kit_users_last_login", "last_login_at"),
    )


class BuyerSession(Model):
    """A buyer signed in through the login (isvapp/login): the browser's cookie names it by a
    random id, of which only the SHA-256 is kept. Logout ends it here, so a copy of the cookie
    is worthless afterwards; the IdP's refresh token lives only here, sealed (vault)."""

    __tablename__ = "buyer_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    instance_key: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str] = mapped_column(String(64))
    app_id: Mapped[str] = mapped_column(String(64))
    user_name: Mapped[str] = mapped_column(String(255))
    refresh_sealed: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (Index("ix_buyer_sessions_expires", "expires_at"),)


class Department(Model):
    __tablename__ = "departments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_key: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str] = mapped_column(String(64))
    org_code: Mapped[str] = mapped_column(String(64))
    org_name: Mapped[str] = mapped_column(String(128))
    parent_code: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (
        UniqueConstraint("instance_key", "tenant_id", "org_code", name="uq_departments_key"),
        Index("ix_departments_parent", "instance_key", "tenant_id", "parent_code"),
        Index("ix_departments_tenant", "tenant_id"),
    )


# --- background work -----------------------------------------------------------------------------


class JobState:
    QUEUED = "queued"
    RUNNING = "running"  # claimed by a worker until locked_until; a dead worker's lease runs out
    DONE = "done"
    DEAD = "dead"  # out of attempts; kept with its last error, retried by `isvapp jobs retry`
    # A dead job the merchant gave up on the jobs page, with a reason: kept, never run again.
    GIVEN_UP = "given_up"
    ALL = (QUEUED, RUNNING, DONE, DEAD, GIVEN_UP)


class Job(Model):
    """Durable background work, written in the same transaction as the event that needs it."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # provision | fetch_order | usage_push
    key: Mapped[str] = mapped_column(String(100))  # the event id, or what makes the job unique
    payload: Mapped[dict | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=12)
    run_after: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Not indexed: an instance's jobs are found through its events and licenses (dashboard.views.timeline).
    instance_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Who gave the job up, when and why (JobState.GIVEN_UP): the jobs page records it.
    given_up_by: Mapped[str | None] = mapped_column(String(64))
    given_up_at: Mapped[datetime | None] = mapped_column(DateTime)
    given_up_reason: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (
        UniqueConstraint("key", "kind", name="uq_jobs_key_kind"),
        Index("ix_jobs_due", "state", "run_after"),
    )


class UsageState:
    PENDING = "pending"
    SENDING = "sending"  # in a batch being pushed; a crashed push resends the same metering_sn
    PUSHED = "pushed"
    REJECTED = "rejected"  # the marketplace refused this record (error_code says why)


class UsageRecord(Model):
    """One pay-per-use usage record (SDR); metering_sn is unique here and at the marketplace."""

    __tablename__ = "usage_records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    metering_sn: Mapped[str] = mapped_column(String(64), unique=True)
    instance_id: Mapped[str] = mapped_column(String(64))
    usage_value: Mapped[str] = mapped_column(String(32))
    begin_time: Mapped[datetime] = mapped_column(DateTime)
    end_time: Mapped[datetime] = mapped_column(DateTime)
    record_time: Mapped[datetime] = mapped_column(DateTime)
    relate_pkg_instance: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=UsageState.PENDING)
    batch: Mapped[str | None] = mapped_column(String(36))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_msg: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    pushed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # When the marketplace wants it (15 minutes into the hour after the one its usage ends in), and
    # whether it missed that (set once, by the worker's check, which alerts on it).
    due_at: Mapped[datetime | None] = mapped_column(DateTime)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (
        Index("ix_usage_state", "state", "created_at"),
        Index("ix_usage_instance", "instance_id"),
        Index("ix_usage_package", "relate_pkg_instance"),
        Index("ix_usage_due", "late", "due_at"),
    )


# --- the merchant's pages ------------------------------------------------------------------------


class AdminUser(Model):
    __tablename__ = "admin_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    session_version: Mapped[int] = mapped_column(Integer, default=1)  # bumped on reset: old sessions end
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class TokenScope:
    """What an API token may be used for (isvapp/productapi)."""

    ENTITLEMENTS = "entitlements"  # read what a tenant or an instance is entitled to
    USAGE = "usage"  # record pay-per-use usage
    ALL = (ENTITLEMENTS, USAGE)


class ApiToken(Model):
    """A bearer token the merchant's product uses for the entitlement and usage API
    (isvapp/productapi): only its SHA-256 is kept; the token is shown once, when it is made.

    It is for some scopes (TokenScope) and for one product or one key's instances, chosen when it
    is made. NULL in any of the three: every scope, any product, any key (a token made before
    tokens had them keeps working as it did)."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))  # the token's first characters, to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    scopes: Mapped[str | None] = mapped_column(String(64))  # TokenScope values, comma-separated
    product_id: Mapped[str | None] = mapped_column(String(64))
    key_fingerprint: Mapped[str | None] = mapped_column(String(24))  # koo.signing.key_fingerprint

    @property
    def scope_list(self):
        return TokenScope.ALL if self.scopes is None else tuple(s for s in self.scopes.split(",") if s)

    def has_scope(self, scope):
        return scope in self.scope_list

    def allows(self, scope, product_id=None, key_fingerprint=None):
        """Whether this token may be used for ``scope`` on an instance of ``product_id`` created
        under the key ``key_fingerprint``. A token bound to a product does not cover an instance
        whose product is not known yet; one bound to a key covers the rows made before keys owned
        rows (no fingerprint), as every key does (docs/protocol.md, "Key ownership")."""
        if not self.has_scope(scope):
            return False
        if self.product_id is not None and product_id != self.product_id:
            return False
        return self.key_fingerprint is None or key_fingerprint in (None, self.key_fingerprint)


class LoginAttempt(Model):
    """Failed logins, counted per address and per name to slow down guessing (any worker, any host)."""

    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    remote_addr: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (
        Index("ix_login_attempts_addr", "remote_addr", "at"),
        Index("ix_login_attempts_name", "name", "at"),
    )


# --- going live and staying up: alerts, and what the processes last reported ---------------------


class Alert(Model):
    """Something that needs the merchant. One row per kind and time window: a repeat within the
    window only counts up, so one alert stands for many like it. Delivered by an ``alert`` job."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    window: Mapped[str] = mapped_column(String(32))  # e.g. the hour it falls in
    subject: Mapped[str] = mapped_column(String(255))  # in English, as raised
    text: Mapped[str] = mapped_column(Text)
    # The subject's and text's msgids and their parameters (isvapp.texts): the pages show an alert in
    # their reader's language, the channels in ALERT_LANGUAGE. NULL on rows from before (English).
    message: Mapped[dict | None] = mapped_column(JSON)
    count: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (UniqueConstraint("kind", "window", name="uq_alerts_kind_window"),)


class StatusItem(Model):
    """What a process last reported, by name: the worker's heartbeat, the order-query API's last
    result, the last backup. Read by the go-live page; one small row each, overwritten."""

    __tablename__ = "status_items"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
