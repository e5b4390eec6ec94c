"""Marshmallow schemas, one per activity: the shape of what the marketplace may send.

Unknown fields are excluded, not refused: the marketplace adds fields over time, and the raw
request is kept in the callback log anyway. ``validation_message`` turns marshmallow's error dict
into the one-line resultMsg that names the field.
"""
import base64
import binascii
import json
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


# --- G1 (GET, every value a string from the query) --------------------------------------------

def Text(max_len=255):
    return fields.String(validate=validate.Length(max=max_len))


class ExtendParams(fields.Field):
    """``saasExtendParams``: Base64 of a JSON array ``[{"name":..,"value":..}]``, loaded as a dict.

    The Base64 text, not the decoded JSON, is what authToken signs; the view keeps both.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or len(value) > 8192:
            raise ValidationError("must be Base64 text of at most 8192 characters")
        try:
            decoded = json.loads(base64.b64decode(value.replace(" ", "+"), validate=True).decode("utf-8"))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise ValidationError("is not Base64-encoded JSON") from None
        if not isinstance(decoded, list) or not all(
                isinstance(item, dict) and isinstance(item.get("name"), str) for item in decoded):
            raise ValidationError('must be a JSON array of {"name": ..., "value": ...}')
        return {item["name"]: item.get("value") for item in decoded}


class G1Flag(fields.Field):
    """``trialFlag`` / ``trialToFormal``: "1" yes, "0" or absent no."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value in ("1", "0", ""):
            return value == "1"
        raise ValidationError("must be 0 or 1")


class G1Order(KooSchema):
    """What a G1 new purchase (and a License-G1 getLicense) carries: the whole order."""

    customerId = Id(100)
    customerName = Text()
    userId = Id(100, required=False)
    userName = Text()
    mobilePhone = Text(512)
    email = Text(512)
    businessId = Id()
    orderId = Id()
    orderLineId = Id(required=False)
    productId = Id()
    skuCode = Id(required=False)
    trialFlag = G1Flag(load_default=False)
    expireTime = KooTime()
    chargingMode = Text(25)
    periodType = Text(16)
    periodNumber = fields.Integer(strict=False)
    provisionType = fields.Integer(strict=False)
    saasExtendParams = ExtendParams()
    amount = fields.Integer(strict=False)
    diskSize = fields.Integer(strict=False)
    bandWidth = fields.Integer(strict=False)
    orderAmount = fields.Decimal(as_string=True, allow_nan=False)


class G1RefreshInstance(KooSchema):
    instanceId = Id()
    orderId = Id()
    productId = Id(required=False)
    expireTime = KooTime(required=True)
    trialToFormal = G1Flag(load_default=False)
    periodType = Text(16)
    periodNumber = fields.Integer(strict=False)


class G1ExpireInstance(KooSchema):
    instanceId = Id()
    orderId = Id()


class G1ReleaseInstance(KooSchema):
    instanceId = Id()
    orderId = Id(required=False)


class G1Upgrade(KooSchema):
    instanceId = Id()
    orderId = Id()
    productId = Id(required=False)
    skuCode = Id(required=False)
    amount = fields.Integer(strict=False)
    diskSize = fields.Integer(strict=False)
    bandWidth = fields.Integer(strict=False)


class G1InstanceStatus(KooSchema):
    instanceId = Id()
    instanceStatus = fields.String(required=True, validate=validate.OneOf(["FREEZE", "NORMAL"]))


class G1QueryInstance(KooSchema):
    instanceId = InstanceIdList(required=True)


# --- License-2.0 ---------------------------------------------------------------------------

class LooseTime(fields.Field):
    """getLicenseAsync times: ``2023-10-27 10:30:15 z`` in the reference, UTC; yyyyMMddHHmmss also taken."""

    FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", KOO_TIME_FORMAT)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or len(value) > 32:
            raise ValidationError("must be a UTC time like 2023-10-27 10:30:15 z")
        text = value.strip()
        if text[-1:] in ("z", "Z"):
            text = text[:-1].strip()
        for fmt in self.FORMATS:
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
            except ValueError:
                continue
        raise ValidationError("must be a UTC time like 2023-10-27 10:30:15 z")


class GetLicenseAsync(KooSchema):
    instanceId = Id()
    effectiveTime = LooseTime(required=True)
    expireTime = LooseTime()
    eventId = Id()
    deviceFingerprint = Text(1024)
