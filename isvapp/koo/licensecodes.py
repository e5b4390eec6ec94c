"""The License-code (授权码) open APIs' bodies and answers: the pages' field limits, checked before a
call leaves, and lenient readers for answers the pages do not show (docs/protocol.md §13).

Sources: 查询授权码 (zh-cn_topic_0070649245, 2025-07-03) for the query, 授权码软件使用统计
(zh-cn_topic_0000002290055385, 2025-05-22) for usage statistics. Activation, the v2 query and the
upload have a path and no stored field table: their bodies are the settings' readings.
"""

from datetime import UTC, datetime, timedelta

from .times import read_time

ACTIVATE = "/api/mkp-openapi-public/global/v1/license/activate"
QUERY_V1 = "/api/mkp-openapi-public/global/v1/license/heartbeat"
QUERY_V2 = "/api/mkp-openapi-public/global/v2/license/heartbeat"
USAGE_INFO = "/api/mkp-openapi-public/global/v2/license/software-usage-info"
UPLOAD = "/api/mkp-openapi-public/global/v1/market-event/{event_id}/file"

CODE_MAX = 64  # license, 表1 of both pages
ACCOUNT_MAX = 256  # heartbeatInfo.thirdPartyAccount; SoftwareUsageInfo.id
IP_MAX = 32
BATCH_MAX = 100  # usage_info entries per call, and software_usage_Info entries per entry
ACTIVE_NUM_DIGITS = 9


class Invalid(ValueError):
    """A body the pages' limits refuse: it is never sent."""


def _text(value, name, limit, required=True):
    if value is None or value == "":
        if required:
            raise Invalid(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise Invalid(f"{name} must be a string")
    if len(value) > limit:
        raise Invalid(f"{name} is longer than {limit} characters")
    return value


def code(value, name="license"):
    return _text(value, name, CODE_MAX)


def activate_body(license_code):
    """The activation page stores no field table: the code in ``license``, as the query sends it."""
    return {"license": code(license_code)}


def query_v1_body(license_code, account=None, ip=None):
    """v1: ``license``, and the sunset heartbeatInfo only when the software names its user
    (thirdPartyAccount is mandatory inside it, ip optional)."""
    body = {"license": code(license_code)}
    if account or ip:
        body["heartbeatInfo"] = {"thirdPartyAccount": _text(account, "thirdPartyAccount", ACCOUNT_MAX)}
        if ip:
            body["heartbeatInfo"]["ip"] = _text(ip, "ip", IP_MAX)
    return body


def query_v2_body(license_codes, field="licenses"):
    """v2 is a batch of codes; its field name is a setting (KOO_LICENSE_QUERY_V2_FIELD)."""
    codes = list(license_codes)
    if not codes or len(codes) > BATCH_MAX:
        raise Invalid(f"a v2 query carries 1 to {BATCH_MAX} license codes")
    return {field: [code(c) for c in codes]}


def usage_entry(entry):
    """One SoftwareUsageInfo: exactly one of ``id`` (a client) or ``active_num`` (clients active
    today), as the page's 备注 says."""
    if not isinstance(entry, dict):
        raise Invalid("each software_usage_Info entry is an object")
    has_id, has_num = entry.get("id") not in (None, ""), entry.get("active_num") is not None
    if has_id == has_num:
        raise Invalid("each software_usage_Info entry carries exactly one of id and active_num")
    if has_id:
        return {"id": _text(entry["id"], "id", ACCOUNT_MAX)}
    number = entry["active_num"]
    if isinstance(number, bool) or not isinstance(number, int) or number < 0 or len(str(number)) > ACTIVE_NUM_DIGITS:
        raise Invalid(f"active_num is a whole number of at most {ACTIVE_NUM_DIGITS} digits")
    return {"active_num": number}


def usage_body(reports):
    """``reports``: [(license code, [entries])]; at most 100 codes, 100 entries each."""
    reports = list(reports)
    if not reports or len(reports) > BATCH_MAX:
        raise Invalid(f"usage_info carries 1 to {BATCH_MAX} license codes")
    usage = []
    for license_code, entries in reports:
        entries = list(entries)
        if not entries or len(entries) > BATCH_MAX:
            raise Invalid(f"software_usage_Info carries 1 to {BATCH_MAX} entries")
        usage.append({"license": code(license_code), "software_usage_Info": [usage_entry(e) for e in entries]})
    return {"usage_info": usage}


# "Never expires": the marketplace gives a license code without an end the expiry 2099-12-31
# 23:59:59 (the fake marketplace's PLXXXXXX, as the Seller Console's test code showed on the walk:
# 2100-01-01 07:59:59 in Asia/Shanghai, the same moment read as UTC). An expiry from that day on,
# in any zone (UTC+14 begins it 14 hours early), is shown as never, and is never a real end.
NEVER_FROM = datetime(2099, 12, 31, tzinfo=UTC) - timedelta(hours=14)


def never_expires(moment):
    """Whether an expiry (aware, or naive UTC as stored) is the marketplace's "never"."""
    if not isinstance(moment, datetime):
        return False
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) >= NEVER_FROM


STATE_KEYS = ("status", "state", "licenseStatus", "license_status")
EXPIRY_KEYS = ("expireTime", "expire_time", "expiredTime", "expired_time", "endTime", "end_time")
WRAPPERS = ("data", "result", "licenseInfo", "license_info")


def _fields(answer):
    """The answer itself, or the object it wraps its fields in."""
    for key in WRAPPERS:
        inner = answer.get(key)
        if isinstance(inner, dict):
            return inner
    return answer


def read_state(answer):
    """(status text or None, aware expiry or None) from a v1 query or an activation answer."""
    fields = _fields(answer)
    state = next((str(fields[k]) for k in STATE_KEYS if fields.get(k) not in (None, "")), None)
    expiry = next((read_time(fields[k])[0] for k in EXPIRY_KEYS if fields.get(k) not in (None, "")), None)
    return state, expiry


def read_batch(answer):
    """{code: (status, expiry)} from a v2 answer: the first list of objects that name a license."""
    candidates = [answer, _fields(answer)]
    for holder in candidates:
        for value in holder.values():
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                found = {str(v.get("license")): read_state(v) for v in value if v.get("license")}
                if found:
                    return found
    return {}
