"""Marshmallow schemas, one per activity: the shape of what the marketplace may send.

Unknown fields are excluded, not refused: the marketplace adds fields over time, and the raw
request is kept in the callback log anyway. ``validation_message`` turns marshmallow's error dict
into the one-line resultMsg that names the field.
"""
import base64
import binascii
import json
from datetime import datetime, timezone

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

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


# --- Kit sync (§2.B, §2.D): G2 sends lists, G1 sends the same lists as JSON strings -------------

MAX_KIT_ITEMS = 200_000


def _kit_list(value, name):
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValidationError("is not a JSON list") from None
    if not isinstance(value, list):
        raise ValidationError("must be a list")
    if len(value) > MAX_KIT_ITEMS:
        raise ValidationError(f"has {len(value)} entries, at most {MAX_KIT_ITEMS} allowed")
    return value


def _text_of(item, key, where, max_len, required=False, aliases=()):
    value = item.get(key)
    for alias in aliases:
        if value is None:
            value = item.get(alias)
    if value is None or value == "":
        if required:
            raise ValidationError(f"{where}.{key}: Missing data for required field.")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationError(f"{where}.{key}: Not a valid string.")
    value = str(value)
    if len(value) > max_len:
        raise ValidationError(f"{where}.{key}: Longer than maximum length {max_len}.")
    return value


class OrgList(fields.Field):
    """``orgInfo``: a flat list of {orgCode, name, parentCode}, checked by hand for speed.

    A full sync carries tens of thousands of departments; a nested marshmallow schema would
    spend most of the 5 s budget building error dictionaries nobody reads.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        orgs = {}
        for i, item in enumerate(_kit_list(value, attr)):
            where = f"[{i}]"
            if not isinstance(item, dict):
                raise ValidationError(f"{where}: must be an object")
            code = _text_of(item, "orgCode", where, 64, required=True)
            if code in orgs:
                raise ValidationError(f"{where}.orgCode: {code} appears twice")
            orgs[code] = (_text_of(item, "name", where, 128, required=True, aliases=("orgName",)),
                          _text_of(item, "parentCode", where, 64))
        return orgs


USER_FIELDS = {"name": 255, "position": 255, "orgCode": 64, "employeeCode": 64, "employeeType": 16}


class UserList(fields.Field):
    """``userList``: users as objects (G2) or a JSON string of them (G1), checked by hand for speed."""

    def _deserialize(self, value, attr, data, **kwargs):
        users = {}
        for i, item in enumerate(_kit_list(value, attr)):
            where = f"[{i}]"
            if not isinstance(item, dict):
                raise ValidationError(f"{where}: must be an object")
            user = {"userName": _text_of(item, "userName", where, 255, required=True)}
            for key, max_len in USER_FIELDS.items():
                user[key] = _text_of(item, key, where, max_len)
            role = item.get("role")
            if role not in (None, "", "user", "admin"):
                raise ValidationError(f"{where}.role: must be user or admin")
            user["role"] = role or None
            enable = item.get("enable", True)
            if enable not in (True, False, "true", "false", 1, 0, "1", "0"):
                raise ValidationError(f"{where}.enable: must be true or false")
            user["enable"] = enable in (True, "true", 1, "1")
            extra = {k: v for k, v in item.items() if k not in user and k not in USER_FIELDS}
            user["extra"] = extra or None
            users[user["userName"]] = user
        return list(users.values())


def KitId(max_len=64):
    """An id the marketplace may leave empty (tenantSync while the seller applies for credentials)."""
    return fields.String(load_default="", validate=validate.Length(max=max_len), allow_none=True)


class KitSchema(Schema):
    """Kit bodies carry no activity (the path names the interface); flags are integers."""

    class Meta:
        unknown = EXCLUDE

    testFlag = TestFlag(load_default=False)
    timeStamp = fields.String(validate=validate.Length(max=20))
    # Fields required unless the flag says delete (0): a delete needs only the keys.
    REQUIRED_UNLESS_DELETE = ()

    @validates_schema
    def _required_unless_delete(self, data, **kwargs):
        if data.get("flag", 1) != 0:
            missing = [name for name in self.REQUIRED_UNLESS_DELETE if not data.get(name)]
            if missing:
                raise ValidationError({name: ["Missing data for required field."] for name in missing})


def Flag(*choices, default=None):
    return fields.Integer(strict=False, validate=validate.OneOf(choices),
                          **({"load_default": default} if default is not None else {"required": True}))


class TenantSync(KitSchema):
    instanceId = KitId()
    orderId = KitId()
    tenantId = Id()
    tenantCode = Id(required=False)
    name = fields.String(validate=validate.Length(max=255))
    domainName = fields.String(validate=validate.Length(max=255))
    flag = Flag(0, 1, 2)
    REQUIRED_UNLESS_DELETE = ("tenantCode", "name", "domainName")


class ApplicationSync(KitSchema):
    instanceId = KitId()
    orderId = KitId()
    tenantId = Id()
    appId = Id()
    name = fields.String(validate=validate.Length(max=255))
    clientId = fields.String(validate=validate.Length(max=255))
    clientSecret = fields.String(validate=validate.Length(max=4096))
    flag = Flag(0, 1, 2, default=1)
    REQUIRED_UNLESS_DELETE = ("clientId", "clientSecret")


class AuthSync(KitSchema):
    instanceId = KitId()
    tenantId = Id()
    appId = Id()
    userList = UserList(required=True)
    currentSyncTime = fields.String(validate=validate.Length(max=20))
    flag = Flag(0, 1, 2, 3)


class SingleOrgSync(KitSchema):
    instanceId = KitId()
    tenantId = Id()
    orgCode = Id()
    orgName = fields.String(validate=validate.Length(max=128))
    parentCode = fields.String(validate=validate.Length(max=64), allow_none=True)
    flag = Flag(0, 1, 2)
    REQUIRED_UNLESS_DELETE = ("orgName",)


class AllOrgSync(KitSchema):
    instanceId = KitId()
    tenantId = Id()
    orgInfo = OrgList(required=True)
