"""What the pages call a model's fields, in English (msgids: isvapp/translations holds the Chinese).

Its own module, below both the views that show the labels and i18n, which hands them to the
translation extractor: kept in views, i18n had to import views, which imports i18n.
"""

from ..koo import codes

FIELD_LABELS = {
    "generation": "Protocol generation",
    "product_type": "Product type",
    "order_id": "Order",
    "order_line_id": "Order line",
    "product_id": "Product",
    "sku_code": "Specification (SKU)",
    "customer_id": "Customer ID",
    "customer_name": "Customer",
    "user_id": "IAM user ID",
    "user_name": "IAM user",
    "charging_mode": "Charging mode",
    "period_type": "Period",
    "period_number": "Number of periods",
    "trial": "Trial",
    "details_state": "Order details",
    "expire_time": "Expires",
    "created_at": "Created",
    "released_at": "Released",
}

# A usage record's state as the instance page says it (models.UsageState: the worker's word for it).
USAGE_STATE_LABELS = {
    "pending": "not pushed yet",
    "sending": "being pushed",
    "pushed": "pushed",
    "rejected": "refused by the marketplace",
}

# What the pages call a lifecycle event (provisioning.METHODS's kinds), a background job's kind and
# state, the result codes isvapp answers, and a license code's status as the marketplace gives it.
# English here; msgids for the catalog (i18n.python_msgids hands every value over).
EVENT_LABELS = {
    "created": "created",
    "details_fetched": "order details fetched",
    "details_failed": "order details not fetched",
    "renewed": "renewed",
    "trial_converted": "trial turned formal",
    "renewal_cancelled": "renewal cancelled",
    "renewal_changed": "renewed with a change",
    "order_notified": "order notified",
    "order_fetched": "order fetched",
    "frozen": "frozen",
    "unfrozen": "unfrozen",
    "expired": "expired",
    "upgraded": "upgraded",
    "released": "released",
    "license_issued": "license issued",
    "tenant_synced": "tenant synced",
    "tenant_deleted": "tenant deleted",
    "app_synced": "app synced",
    "app_deleted": "app deleted",
    "users_synced": "users synced",
    "department_synced": "department synced",
    "departments_replaced": "departments replaced",
}
JOB_LABELS = {
    "provision": "provisioning hook",
    "fetch_order": "order details fetch",
    "license_upload": "license upload",
    "license_usage": "license usage report",
    "usage_push": "usage push",
    "alert": "alert delivery",
    "direct_alert": "alert delivery (by the server)",
    "prune": "pruning",
}
JOB_STATE_LABELS = {"queued": "queued", "running": "running", "done": "done", "dead": "dead", "given_up": "given up"}
# The merchant's notices (isvapp/background/notices.py), as the alerts page names them.
NOTICE_LABELS = {
    "new_order": "New orders",
    "release": "Releases",
    "expiring": "Instances about to expire",
    "digest": "Daily digest",
}
RESULT_LABELS = {code: message.rstrip(".") for code, message in codes.MESSAGES.items()}
# A license code's status (docs/protocol.md 13.6): NORMAL when in use; the ones that end it.
LICENSE_CODE_STATES = {
    "NORMAL": "in use",
    "ACTIVE": "in use",
    "EXPIRED": "expired",
    "FROZEN": "frozen",
    "RELEASED": "released",
    "DELETED": "deleted",
    "INVALID": "invalid",
    "REVOKED": "revoked",
    "DISABLED": "disabled",
    "CANCELLED": "cancelled",
}
ROLE_LABELS = {"user": "user", "admin": "administrator"}
# Fields whose values are what the marketplace or the buyer sent (ids, names): shown as they came.
DATA_FIELDS = {
    "generation",
    "order_id",
    "order_line_id",
    "product_id",
    "sku_code",
    "customer_id",
    "customer_name",
    "user_id",
    "user_name",
}
# The order's enumerations as the marketplace sends them (chargingMode, periodType) and isvapp's
# product types; a value not here is shown as it came.
FIELD_VALUES = {
    "product_type": {"saas": "SaaS", "license": "License"},
    "charging_mode": {
        "PERIOD": "yearly/monthly",
        "ONE_TIME": "one-time",
        "ON_DEMAND": "pay-per-use",
        "ON_DEMAND_PKG": "pay-per-use package",
    },
    "period_type": {"year": "year", "month": "month", "week": "week", "day": "day", "hour": "hour"},
}
