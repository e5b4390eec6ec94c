"""The orders the fake marketplace's order query answers: the documented MOCK* order ids, each with
its order type and charging mode, and a plausible monthly order for any other id. Pure: no Flask,
no state."""

from datetime import UTC, datetime, timedelta

MOCK_ORDERS = {
    "MOCKPERIODYEARNEW": ("NEW", "PERIOD", "year", 1),
    "MOCKONETIMENEW": ("NEW", "ONE_TIME", None, None),
    "MOCKONDEMAND": ("NEW", "ON_DEMAND", None, None),
    "MOCKONDEMANDPKG": ("NEW", "ON_DEMAND_PKG", "month", 1),
    "MOCKPERIODDAYTRIAL": ("NEW", "PERIOD", "day", 7),
    "MOCKMONTYTRIALTOFORMAL": ("TRIAL_TO_FORMAL", "PERIOD", "month", 1),
    "MOCKMONTYUNSUBSCRIBE": ("UNSUBSCRIBE", "PERIOD", "month", 1),
    "MOCKMONTYRENEW": ("RENEW", "PERIOD", "month", 1),
    "MOCKMONTYCHANGE": ("CHANGE", "PERIOD", "month", 1),
}
PERIOD_DAYS = {"year": 366, "month": 31, "day": 1}


def order_info(order_id, order_line_id=None, now=None):
    order_type, mode, period, count = MOCK_ORDERS.get(order_id, ("NEW", "PERIOD", "month", 1))
    now = now or datetime.now(UTC)
    line = {
        "orderLineId": order_line_id or f"{order_id}-000001",
        "chargingMode": mode,
        "productInfo": [{"productId": "00301-666666-0--0", "skuCode": "fake-sku", "linearValue": 1}],
    }
    if period:
        expires = now + timedelta(days=PERIOD_DAYS[period] * count)  # type: ignore[operator]  # set with a period
        line.update(periodType=period, periodNumber=count, expireTime=expires.strftime("%Y%m%d%H%M%S"))
    if order_id == "MOCKPERIODDAYTRIAL":
        line["trialFlag"] = "1"
    return {
        "orderId": order_id,
        "orderType": order_type,
        "createTime": now.strftime("%Y%m%d%H%M%S"),
        "buyerInfo": {
            "customerId": "fake0000customer0000000000000000",
            "customerName": "Fake Customer",
            "userId": "fake0000user00000000000000000000",
            "userName": "fake-iam-user",
        },
        "orderLine": [line],
    }
