"""Marshmallow schemas, one per activity: the shape of what the marketplace may send.

Unknown fields are excluded, not refused: the marketplace adds fields over time, and the raw
request is kept in the callback log anyway. ``validation_message`` turns marshmallow's error dict
into the one-line resultMsg that names the field.
"""
from datetime import datetime, timezone

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

KOO_TIME_FORMAT = "%Y%m%d%H%M%S"
MAX_QUERY_IDS = 100


class KooTime(fields.Field):
    """``yyyyMMddHHmmss`` in UTC, loaded as an aware datetime."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or len(value) != 14 or not value.isdigit():
            raise ValidationError("must be yyyyMMddHHmmss")
        try:
            return datetime.strptime(value, KOO_TIME_FORMAT).replace(tzinfo=timezone.utc)
        except ValueError:
            raise ValidationError("is not a valid date and time") from None

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.astimezone(timezone.utc).strftime(KOO_TIME_FORMAT)


class TestFlag(fields.Field):
    """``"1"`` debugging, ``"0"``/absent real; G2 sends strings, Kit sends integers."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value in ("1", 1):
            return True
        if value in ("0", 0, ""):
            return False
        raise ValidationError("must be 0 or 1")


def Id(max_len=64, required=True):
    """A marketplace identifier: a non-empty string of bounded length."""
    return fields.String(required=required, validate=validate.Length(min=1, max=max_len))


class KooSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    activity = fields.String(required=True, validate=validate.Length(max=32))
    testFlag = TestFlag(load_default=False)


class G2NewInstance(KooSchema):
    orderId = Id()
    orderLineId = Id()
    businessId = Id()


class G2RefreshInstance(KooSchema):
    scene = fields.String(required=True, validate=validate.OneOf(
        ["TRIAL_TO_FORMAL", "RENEWAL", "UNSUBSCRIBE_RENEWAL_PERIOD"]))
    orderId = Id()
    orderLineId = Id()
    instanceId = Id()
    productId = Id(required=False)
    expireTime = KooTime(required=True)


class G2UpdateInstanceStatus(KooSchema):
    instanceId = Id()
    status = fields.String(required=True, validate=validate.OneOf(["FREEZE", "UNFREEZE"]))


class G2ReleaseInstance(KooSchema):
    instanceId = Id()
    orderId = Id(required=False)
    orderLineId = Id(required=False)


class G2UpgradeInstance(KooSchema):
    instanceId = Id()
    orderId = Id()
    orderLineId = Id()


class InstanceIdList(fields.Field):
    """One id or a comma-separated list of at most 100 ids, each at most 64 characters.

    The reference gives the field a maximum length of 100 and also allows 100 ids per call;
    both cannot hold, so the count and each id's length are checked instead.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("must be a string")
        ids = [part.strip() for part in value.split(",") if part.strip()]
        if not ids:
            raise ValidationError("must name at least one instance")
        if len(ids) > MAX_QUERY_IDS:
            raise ValidationError(f"names {len(ids)} instances, at most {MAX_QUERY_IDS} allowed")
        if any(len(i) > 64 for i in ids):
            raise ValidationError("has an id longer than 64 characters")
        return list(dict.fromkeys(ids))


class G2QueryInstance(KooSchema):
    instanceId = InstanceIdList(required=True)


def validation_message(error):
    """``orderId: Missing data for required field.``: the first problem, naming its field."""
    messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
    parts = []
    for field, problems in sorted(messages.items()):
        text = problems[0] if isinstance(problems, list) and problems else problems
        parts.append(f"{text}" if field == "_schema" else f"{field}: {text}")
    return "; ".join(str(p) for p in parts)
