"""Marshmallow schemas, one per activity: the shape of what the marketplace may send, read leniently.

A request whose signature verifies is refused for its shape only when the activity truly cannot
be performed: an identifier it needs is missing (or too long to be one). Everything else is read
as well as it can be and the oddity noted (:mod:`isvapp.koo.oddities`) for the merchant to see:
``null`` and ``""`` mean absent, numbers are taken where strings are expected and the other way
round, times are read in every plausible form, free text is never refused (it is cut to what the
database holds, with a note, and loses any NUL character, which PostgreSQL text cannot hold),
unknown fields are ignored. ``validation_message`` turns
marshmallow's error dict into the one-line resultMsg that names the field.

Every cap here is checked against the database column that stores it (tests/test_limits.py).
"""

import binascii
import json

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load

from . import oddities, strictjson
from .fieldcrypto import lenient_b64decode
from .times import format_time, read_time

MAX_ID = 64  # the documented maximum of every marketplace identifier; the columns hold it
MAX_QUERY_IDS = 100
INT32 = 2**31 - 1


def _absent(value):
    return value is None or value == ""


NUL = "\x00"
NUL_REFUSED = "contains a NUL character (U+0000)."


def strip_nul(text, attr):
    """Free text without NUL (PostgreSQL text cannot hold it; SQLite is read the same), with a note."""
    if NUL not in text:
        return text
    oddities.note("%(field)s: NUL character (U+0000) removed", field=attr)
    return text.replace(NUL, "")


def strip_nul_deep(value, attr):
    """A JSON value (saasExtendParams, a user's extra fields) with NUL removed from every string, keys too."""
    if isinstance(value, str):
        return strip_nul(value, attr)
    if isinstance(value, dict):
        return {strip_nul_deep(k, attr): strip_nul_deep(v, attr) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_nul_deep(v, attr) for v in value]
    return value


def _drop_absent(data):
    """``null`` and ``""`` mean "absent" in every generation (the marketplace sends all three)."""
    return {k: v for k, v in data.items() if not _absent(v)} if isinstance(data, dict) else data


class Str(fields.Field):
    """A string; a number where a string is expected is taken as its text (Java writes either).

    ``nul``: what a NUL character in it means. ``"strip"`` (free text, enumerations, times): removed
    with a note. ``"refuse"`` (identifiers): refused, because an identifier keys rows, idempotency
    keys and later calls, and the same id without its NUL could name another order or tenant.
    ``"keep"``: kept as sent (a secret, stored sealed and never as text; changing it would break it).
    """

    def __init__(self, max_len=None, cut=False, nul="strip", **kwargs):
        super().__init__(**kwargs)
        self.max_len, self.cut, self.nul = max_len, cut, nul

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValidationError("Not a valid string.")
        text = value if isinstance(value, str) else str(value)
        if self.nul != "keep" and NUL in text:
            if self.nul == "refuse":
                raise ValidationError(NUL_REFUSED)
            text = strip_nul(text, attr)
        if self.max_len and len(text) > self.max_len:
            if not self.cut:
                raise ValidationError(f"Longer than maximum length {self.max_len}.")
            oddities.note(
                "%(field)s: %(length)s characters, cut to %(limit)s", field=attr, length=len(text), limit=self.max_len
            )
            text = text[: self.max_len]
        return text


# Which fields refuse a NUL: every Id()/KitId() (orderId, orderLineId, businessId, instanceId,
# productId, skuCode, customerId, userId, eventId, tenantId, tenantCode, appId, orgCode,
# parentCode) and, in Kit lists, userName, orgCode, employeeCode, parentCode (the _text_of fields
# that are not cut). They are what rows and idempotency keys are keyed by and what the
# marketplace names in later calls, so they are never altered; a stripped copy could collide with
# a real id. Everything that is cut (Text, list names) loses its NUL with a note.
def Id(max_len=MAX_ID, required=True):
    """A marketplace identifier: bounded, because it keys rows and idempotency."""
    return Str(max_len, required=required, nul="refuse")


def Text(max_len=None):
    """Free text (names, memo): never a reason to refuse; cut to the column with a note."""
    return Str(max_len, cut=True)


class Choice(Str):
    """An enumerated value, read in any letter case; one not in the list is refused."""

    def __init__(self, choices, **kwargs):
        super().__init__(**kwargs)
        self.choices = choices

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        for choice in self.choices:
            if text.upper() == choice:
                if text != choice:
                    oddities.note("%(field)s: %(value)s read as %(choice)s", field=attr, value=text, choice=choice)
                return choice
        raise ValidationError(f"must be one of {', '.join(self.choices)}")


def read_flag(value):
    """True, False, or None when the value is no flag at all."""
    text = str(value).replace(NUL, "").strip().lower()
    return True if text in ("1", "true", "yes", "y") else False if text in ("0", "false", "no", "n", "") else None


class Flag(fields.Field):
    """``"1"``/``1``/``true`` yes, ``"0"``/``0``/``false`` no; anything else is no, with a note."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            strip_nul(value, attr)  # only the note: read_flag ignores a NUL itself
        flag = read_flag(value)
        if flag is None:
            oddities.note("%(field)s: %(value)s is not 0 or 1; read as 0", field=attr, value=str(value)[:20])
        return bool(flag)


class Int(fields.Field):
    """An integer, from a number or its text; one that cannot be stored is dropped with a note."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            value = strip_nul(value, attr)
        try:
            number = int(str(value).strip()) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or abs(number) > INT32:
            oddities.note("%(field)s: %(value)s is not a storable integer; ignored", field=attr, value=str(value)[:30])
            return None
        return number


class KooTime(fields.Field):
    """A time in any readable form (isvapp.koo.times), as an aware UTC datetime.

    One that cannot be read is ``None`` with a note: the activity decides whether it can go on.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            value = strip_nul(value, attr)
        stamp, documented = read_time(value)
        if stamp is None:
            oddities.note("%(field)s: %(value)s is not a readable time; ignored", field=attr, value=str(value)[:40])
        elif not documented:
            oddities.note(
                "%(field)s: %(value)s is not yyyyMMddHHmmss[SSS]; read as %(time)s",
                field=attr,
                value=str(value)[:40],
                time=format_time(stamp),
            )
        return stamp


class KooSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    activity = Str(required=True)
    testFlag = Flag(load_default=False)

    @pre_load
    def _absent_fields(self, data, **kwargs):
        return _drop_absent(data)


# --- G2 SaaS and License-2.0 (POST JSON) -------------------------------------------------------


class G2NewInstance(KooSchema):
    orderId = Id()
    orderLineId = Id()
    businessId = Id()


class G2RefreshInstance(KooSchema):
    """scene: any text; RENEWAL_CHANGE and unknown scenes are handled by the view."""

    scene = Str(load_default="RENEWAL")
    orderId = Id()
    orderLineId = Id(required=False)
    instanceId = Id()
    productId = Id(required=False)
    expireTime = KooTime()


class G2UpdateInstanceStatus(KooSchema):
    instanceId = Id()
    status = Choice(["FREEZE", "UNFREEZE"], required=True)


class G2ReleaseInstance(KooSchema):
    instanceId = Id()
    orderId = Id(required=False)
    orderLineId = Id(required=False)


class G2UpgradeInstance(KooSchema):
    instanceId = Id()
    orderId = Id()
    orderLineId = Id(required=False)


class ChangeInstanceCheck(KooSchema):
    """changeInstanceCheck: may this instance change as the renewal asks? productInfo is passed on."""

    instanceId = Id()
    orderId = Id(required=False)
    orderLineId = Id(required=False)
    productInfo = fields.Raw()


class OrderNotify(KooSchema):
    """orderNotify: the marketplace says an order changed; the order is fetched afterwards.

    Its request table was never retrieved (docs/protocol.md 4.8), so fields it does not name are
    kept as sent (``extra``, at most EXTRA_KEPT of them, each value cut to EXTRA_VALUE_CHARS) with
    a warning, for the merchant to see what the marketplace really sends."""

    EXTRA_KEPT, EXTRA_VALUE_CHARS = 50, 1024

    orderId = Id()
    orderLineId = Id(required=False)
    notifyType = Text()
    orderStatus = Text()
    extra = fields.Dict(load_default=None)

    @pre_load
    def _keep_unknown(self, data, **kwargs):
        if not isinstance(data, dict):
            return data
        named = set(self.fields) - {"extra"}
        extra = {
            str(k)[:64]: v if isinstance(v, (int, float, bool)) or v is None else str(v)[: self.EXTRA_VALUE_CHARS]
            for k, v in list(data.items())[:200]
            if k not in named
        }
        extra = dict(list(extra.items())[: self.EXTRA_KEPT])
        if extra:
            oddities.note("undocumented orderNotify fields kept as sent: %(fields)s", fields=", ".join(sorted(extra)))
        return {**{k: v for k, v in data.items() if k in named}, "extra": extra or None}


class InstanceIdList(fields.Field):
    """One id, a comma-separated list, or a JSON list; ids that cannot exist are skipped with a note."""

    def _deserialize(self, value, attr, data, **kwargs):
        parts = value if isinstance(value, list) else str(value).split(",")
        ids = [str(part).strip() for part in parts if str(part).strip()]
        if not ids:
            raise ValidationError("must name at least one instance")
        if len(ids) > MAX_QUERY_IDS:
            oddities.note(
                "%(field)s: %(count)s ids, more than the documented %(limit)s",
                field=attr,
                count=len(ids),
                limit=MAX_QUERY_IDS,
            )
        long = [i for i in ids if len(i) > MAX_ID or NUL in i]  # neither can be an instance's id
        if long:
            oddities.note(
                "%(field)s: %(count)s ids longer than %(limit)s characters or with a NUL skipped",
                field=attr,
                count=len(long),
                limit=MAX_ID,
            )
        return list(dict.fromkeys(i for i in ids if len(i) <= MAX_ID and NUL not in i))


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


class ExtendParams(fields.Field):
    """``saasExtendParams``: Base64 of a JSON array ``[{"name":..,"value":..}]``, loaded as a dict.

    One that cannot be read is kept as it came (``{"_unreadable": text}``) with a note: the order
    is still created, and the merchant can read the value on the instance page.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        text = strip_nul(str(value), attr)
        try:
            decoded = json.loads(lenient_b64decode(text.replace(" ", "+")).decode("utf-8"))
        except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
            decoded = None
        if isinstance(decoded, dict):
            return strip_nul_deep(decoded, attr)
        if isinstance(decoded, list) and all(isinstance(i, dict) and "name" in i for i in decoded):
            return strip_nul_deep({str(item["name"]): item.get("value") for item in decoded}, attr)
        oddities.note("%(field)s: not Base64 JSON name/value pairs; kept as sent", field=attr)
        return {"_unreadable": text[:8192]}


class G1Order(KooSchema):
    """What a G1 new purchase (and a License-G1 getLicense) carries: the whole order."""

    customerId = Id(100, required=False)
    customerName = Text(255)
    userId = Id(100, required=False)
    userName = Text(255)
    mobilePhone = Text(512)
    email = Text(512)
    businessId = Id()
    orderId = Id()
    orderLineId = Id(required=False)
    productId = Id(required=False)
    skuCode = Id(required=False)
    trialFlag = Flag(load_default=False)
    expireTime = KooTime()
    chargingMode = Text(32)
    periodType = Text(32)
    periodNumber = Int()
    provisionType = Int()
    saasExtendParams = ExtendParams()
    amount = Int()
    diskSize = Int()
    bandWidth = Int()
    orderAmount = Text(32)


class G1RefreshInstance(KooSchema):
    instanceId = Id()
    orderId = Id()
    productId = Id(required=False)
    expireTime = KooTime()
    trialToFormal = Flag(load_default=False)
    periodType = Text(32)
    periodNumber = Int()


class G1ExpireInstance(KooSchema):
    instanceId = Id()
    orderId = Id(required=False)


class G1ReleaseInstance(KooSchema):
    instanceId = Id()
    orderId = Id(required=False)


class G1Upgrade(KooSchema):
    instanceId = Id()
    orderId = Id()
    productId = Id(required=False)
    skuCode = Id(required=False)
    amount = Int()
    diskSize = Int()
    bandWidth = Int()


class G1InstanceStatus(KooSchema):
    instanceId = Id()
    instanceStatus = Choice(["FREEZE", "NORMAL", "UNFREEZE"], required=True)


class G1QueryInstance(KooSchema):
    instanceId = InstanceIdList(required=True)


# --- License-2.0 ---------------------------------------------------------------------------


class GetLicenseAsync(KooSchema):
    instanceId = Id()
    effectiveTime = KooTime()
    expireTime = KooTime()
    eventId = Id()
    deviceFingerprint = Text(1024)


# --- Kit sync (§2.B, §2.D): G2 sends lists, G1 sends the same lists as JSON strings -------------

MAX_KIT_ITEMS = 200_000


def _kit_list(value):
    if isinstance(value, str):
        try:
            value = strictjson.loads(value)
        except strictjson.RepeatedKey as error:
            raise ValidationError(f"{error}: each key may be named once") from None
        except (ValueError, RecursionError):
            raise ValidationError("is not a JSON list") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ValidationError("must be a list")
    if len(value) > MAX_KIT_ITEMS:
        raise ValidationError(f"has {len(value)} entries, at most {MAX_KIT_ITEMS} allowed")
    return value


def _text_of(item, key, where, max_len, required=False, aliases=(), cut=False):
    """One field of a list item, read like :class:`Str` (checked by hand: lists are long)."""
    value = item.get(key)
    for alias in aliases:
        if _absent(value):
            value = item.get(alias)
    if _absent(value):
        if required:
            raise ValidationError(f"{where}.{key}: Missing data for required field.")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        if not cut:
            raise ValidationError(f"{where}.{key}: Not a valid string.")
        oddities.note("%(field)s: not text; ignored", field=f"{where}.{key}")
        return None
    value = value if isinstance(value, str) else str(value)
    if NUL in value:  # ids (not cut) refuse it, text loses it: as Str does
        if not cut:
            raise ValidationError(f"{where}.{key}: {NUL_REFUSED}")
        value = strip_nul(value, f"{where}.{key}")
    if len(value) > max_len:
        if not cut:
            raise ValidationError(f"{where}.{key}: Longer than maximum length {max_len}.")
        oddities.note(
            "%(field)s: %(length)s characters, cut to %(limit)s",
            field=f"{where}.{key}",
            length=len(value),
            limit=max_len,
        )
        value = value[:max_len]
    return value


class OrgList(fields.Field):
    """``orgInfo``: a flat list of {orgCode, name, parentCode}, checked by hand for speed.

    A full sync carries tens of thousands of departments; a nested marshmallow schema would
    spend most of the 5 s budget building error dictionaries nobody reads. A repeated orgCode is
    noted and the last one wins.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        orgs, repeated = {}, []
        for i, item in enumerate(_kit_list(value)):
            where = f"{attr}[{i}]"
            if not isinstance(item, dict):
                raise ValidationError(f"{where}: must be an object")
            code = _text_of(item, "orgCode", where, MAX_ID, required=True)
            if code in orgs:
                repeated.append(code)
            name = _text_of(item, "name", where, 128, aliases=("orgName",), cut=True)
            if name is None:
                oddities.note("%(field)s: missing; the orgCode stands in", field=f"{where}.name")
            orgs[code] = (name or code, _text_of(item, "parentCode", where, MAX_ID))
        if repeated:
            oddities.note(
                "%(field)s: orgCode %(codes)s repeated; the last one kept",
                field=attr,
                codes=", ".join(sorted(set(repeated))[:3]),
            )
        return orgs


USER_FIELDS = {"name": 255, "position": 255, "employeeType": 16}
USER_IDS = {"orgCode": MAX_ID, "employeeCode": MAX_ID}
ROLES = ("user", "admin")


class UserList(fields.Field):
    """``userList``: users as objects (G2) or a JSON string of them (G1), checked by hand for speed."""

    def _deserialize(self, value, attr, data, **kwargs):
        users = {}
        for i, item in enumerate(_kit_list(value)):
            where = f"{attr}[{i}]"
            if not isinstance(item, dict):
                raise ValidationError(f"{where}: must be an object")
            user = {"userName": _text_of(item, "userName", where, 255, required=True)}
            for key, max_len in USER_FIELDS.items():
                user[key] = _text_of(item, key, where, max_len, cut=True)
            for key, max_len in USER_IDS.items():
                user[key] = _text_of(item, key, where, max_len)
            user["role"] = _role(item.get("role"), where)
            user["enable"] = _enable(item.get("enable"), where)
            extra = {k: v for k, v in item.items() if k not in user}
            user["extra"] = strip_nul_deep(extra, f"{where}.extra") if extra else None
            users[user["userName"]] = user
        return list(users.values())


def _role(value, where):
    if _absent(value):
        return None
    role = strip_nul(str(value), f"{where}.role").strip().lower()
    if role not in ROLES:
        oddities.note(
            "%(field)s: %(value)s is neither user nor admin; kept as sent", field=f"{where}.role", value=str(value)[:16]
        )
    return role[:16]


def _enable(value, where):
    if _absent(value):
        return True
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    oddities.note(
        "%(field)s: %(value)s is not true or false; read as true", field=f"{where}.enable", value=str(value)[:16]
    )
    return True


def KitId(max_len=MAX_ID):
    """An id the marketplace may leave empty (tenantSync while the seller applies for credentials)."""
    return Str(max_len, load_default="", nul="refuse")


class FlagChoice(fields.Field):
    """A Kit operation flag (0 delete, 1 add, 2 modify, 3 revoke): without it nothing can be done."""

    def __init__(self, *choices, **kwargs):
        super().__init__(**kwargs)
        self.choices = choices

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            flag = int(str(value).strip())
        except ValueError:
            flag = None
        if flag not in self.choices:
            raise ValidationError(f"must be one of {', '.join(map(str, self.choices))}")
        return flag


class KitSchema(Schema):
    """Kit bodies carry no activity (the path names the interface); flags are integers."""

    class Meta:
        unknown = EXCLUDE

    testFlag = Flag(load_default=False)
    timeStamp = Str()
    # Fields an add should carry: their absence is noted, not refused (a delete needs only keys).
    EXPECTED_ON_ADD: tuple[str, ...] = ()

    @pre_load
    def _absent_fields(self, data, **kwargs):
        data = _drop_absent(data)
        if isinstance(data, dict):
            self._check_interface(data)
        if isinstance(data, dict) and str(data.get("flag", 1)) == "1":
            for name in self.EXPECTED_ON_ADD:
                if name not in data:
                    oddities.note("%(field)s: missing on an add", field=name)
        return data

    def _check_interface(self, data):
        """No Kit signature covers the URL path, so a captured body could be sent to another
        interface: a department delete ({tenantId, orgCode, flag 0}) at tenantSync reads as the
        tenant's delete. A body carrying a field that only another interface has is refused."""
        mine = set(self.declared_fields)
        for interface, marks in KIT_INTERFACE_FIELDS.items():
            stray = sorted((marks - mine) & set(data))
            if stray:
                raise ValidationError(
                    f"is a field of {interface}, not of this interface: a body shaped for "
                    f"{interface} is not acted on here",
                    field_name=stray[0],
                )


# The fields that name each Kit interface's own business: none of them belongs to another one.
KIT_INTERFACE_FIELDS = {
    "tenantSync": {"tenantCode", "domainName"},
    "applicationSync": {"clientId", "clientSecret"},
    "authSync": {"userList", "currentSyncTime"},
    "singleOrgSync": {"orgCode", "orgName", "parentCode"},
    "allOrgSync": {"orgInfo"},
}


class TenantSync(KitSchema):
    instanceId = KitId()
    orderId = KitId()
    tenantId = Id()
    tenantCode = Id(required=False)
    name = Text(255)
    domainName = Text(255)
    flag = FlagChoice(0, 1, 2, required=True)
    EXPECTED_ON_ADD = ("tenantCode", "name", "domainName")


class ApplicationSync(KitSchema):
    instanceId = KitId()
    orderId = KitId()
    tenantId = Id()
    appId = Id()
    name = Text(255)
    clientId = Text(255)
    clientSecret = Str(8192, nul="keep")  # sealed as sent; a NUL in G2's Base64 is answered 000101
    flag = FlagChoice(0, 1, 2, load_default=1)
    EXPECTED_ON_ADD = ("clientId", "clientSecret")


class AuthSync(KitSchema):
    instanceId = KitId()
    tenantId = Id()
    appId = Id()
    userList = UserList(required=True)
    currentSyncTime = Str()
    flag = FlagChoice(0, 1, 2, 3, required=True)


class SingleOrgSync(KitSchema):
    instanceId = KitId()
    tenantId = Id()
    orgCode = Id()
    orgName = Text(128)
    parentCode = Id(required=False)
    flag = FlagChoice(0, 1, 2, required=True)
    EXPECTED_ON_ADD = ("orgName",)


class AllOrgSync(KitSchema):
    instanceId = KitId()
    tenantId = Id()
    orgInfo = OrgList(required=True)
