"""What the pages call a model's fields, in English (msgids: isvapp/translations holds the Chinese).

Its own module, below both the views that show the labels and i18n, which hands them to the
translation extractor: kept in views, i18n had to import views, which imports i18n.
"""

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
