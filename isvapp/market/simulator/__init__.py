"""A marketplace simulator: plays KooGallery against any isvapp-compatible server.

    isvapp-sim https://isv.example.com --key KEY --kit-key KIT_KEY --kit-public-key kit_public.pem
    flask --app isvapp simulate http://127.0.0.1:8000        # keys from this app's config

It runs the Seller Console's debugging cases (and more) with only the keys the merchant has, and
checks what the console checks, saying why a step failed: result code, required fields, Body-Sign,
that appInfo decrypts with the key, the same instanceId for a retried order, idempotent deletes,
and the 5 s answer time. Every request carries testFlag=1 unless told otherwise. It depends on
the protocol layer (isvapp.koo) and the standard library only, never on the server's database.

Suites (--suite, repeatable; default all): period, onetime, payperuse, trial, cancel, change
(changeInstanceCheck, orderNotify, refreshInstance RENEWAL_CHANGE), seller-console (two full
debugging rounds with the console's MOCK order ids, testFlag 1; round 2 must get a live, new
instance), kit, license-g1, license-2. change and seller-console are G2 suites.

    --probes     requests the server must refuse (bad signature, stale timestamp, replays ...)
    --tolerance  correctly signed but oddly shaped requests it must accept: a number where a
                 string is expected (signed over the string-map form), null and "" fields, a
                 17-digit expireTime, an unknown scene, text/plain or no Content-Type, /produce/,
                 over 100 queried ids, odd G1 parameters, odd Kit lists and the /license Kit path
"""
import base64
import http.client
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from urllib.parse import urlencode, urlsplit

import click
from flask.cli import with_appcontext
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from ...koo.fieldcrypto import decrypt_field
from ...koo.signing import (canonical_payload, g1_signed_params, g2_signature, g2_signed_request, kit_signed_request,
                          new_nonce, string_map_payload, verify_body_sign)

DEADLINE_S = 5.0
SUITES = ("period", "onetime", "payperuse", "trial", "cancel", "change", "seller-console", "kit", "license-g1",
          "license-2")


@dataclass
class Step:
    scenario: str
    step: str
    expected: str
    got: str
    ok: bool
    ms: float
    reason: str = ""


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes
    ms: float

    @property
    def json(self):
        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


class Simulator:
    def __init__(self, base_url, key, kit_key=None, kit_public_key=None, test_flag="1", timeout=10.0):
        base = base_url.rstrip("/")
        for suffix in ("/produce", "/license"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        self.base, self.key, self.kit_key = base, key, kit_key or key
        self.kit_public_key = kit_public_key
        self.test_flag, self.timeout = test_flag, timeout
        self.run_id = time.strftime("%m%d%H%M%S") + uuid.uuid4().hex[:4].upper()
        self.steps = []
        self.scenario = ""

    # --- sending ----------------------------------------------------------------------------

    def _send(self, method, path, query=None, body=None, headers=None):
        url = self.base + path + ("?" + urlencode(query) if query else "")
        request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, got_headers, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, got_headers, raw = error.code, dict(error.headers), error.read()
        except (urllib.error.URLError, OSError) as error:
            status, got_headers, raw = 0, {}, str(getattr(error, "reason", error)).encode()
        return Reply(status, got_headers, raw, (time.perf_counter() - started) * 1000)

    def _send_bare(self, path, query, body):
        """A POST with no Content-Type header at all (urllib would add a form type of its own)."""
        parts = urlsplit(self.base)
        connection = (http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection)(
            parts.netloc, timeout=self.timeout)
        started = time.perf_counter()
        try:
            connection.putrequest("POST", parts.path + path + "?" + urlencode(query), skip_accept_encoding=True)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            status, got_headers, raw = response.status, dict(response.getheaders()), response.read()
        except OSError as error:
            status, got_headers, raw = 0, {}, str(error).encode()
        finally:
            connection.close()
        return Reply(status, got_headers, raw, (time.perf_counter() - started) * 1000)

    def post(self, path, query, raw, content_type="application/json"):
        """POST already-signed bytes; ``content_type=None`` sends no Content-Type header."""
        if content_type is None:
            return self._send_bare(path, query, raw)
        return self._send("POST", path, query, raw, {"Content-Type": content_type})

    def g2(self, body, path="/produce", content_type="application/json", **sign):
        raw, query = g2_signed_request(self.key, {"testFlag": self.test_flag, **body}, **sign)
        return self.post(path, query, raw, content_type)

    def g2_as(self, body, raw=None, signed_form=None, path="/produce"):
        """A G2 POST of ``raw`` (default: the compact JSON of ``body``, nulls kept) signed over
        ``signed_form(body)`` (default: the raw bytes): the payload forms a server should try."""
        raw = raw if raw is not None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        signed = signed_form(body).encode() if signed_form else raw
        nonce, timestamp = new_nonce(), str(int(time.time() * 1000))
        query = {"signature": g2_signature(self.key, nonce, timestamp, signed), "timestamp": timestamp,
                 "nonce": nonce}
        return self.post(path, query, raw)

    def g1(self, params, path="/produce", key=None):
        signed = g1_signed_params(key or self.key, {"testFlag": self.test_flag, **params})
        return self._send("GET", path, signed)

    def kit(self, name, body, key=None, base="/produce", **sign):
        raw, headers = kit_signed_request(key or self.kit_key, {"testFlag": int(self.test_flag), **body}, **sign)
        return self._send("POST", f"{base}/produceAPI/v2/{name}", None, raw, headers)

    def order(self, kind):
        return f"SIM{kind.upper()}{self.run_id}"

    # --- checking ----------------------------------------------------------------------------

    def check(self, step, reply, code="000000", fields=(), signed=False, appinfo=False, same=None, same_bytes=None,
              differs=None, listed=None):
        """Record one step; returns the answer's JSON (empty when it was not JSON).

        ``same``/``differs``: (field, value) the answer's field must equal / must not equal;
        ``listed``: an instanceId the answer's ``info`` must hold (a query that found it)."""
        answer = reply.json
        got = answer.get("resultCode", f"HTTP {reply.status}")
        problems = []
        if reply.status != 200:
            problems.append(f"HTTP {reply.status}, the marketplace expects 200")
        if not answer:
            problems.append(f"answer is not a JSON object: {reply.body[:80]!r}")
        elif got != code:
            problems.append(f"resultCode {got} ({answer.get('resultMsg', '')})")
        problems += [f"{name} missing" for name in fields if code == got and not answer.get(name)]
        header = reply.headers.get("Body-Sign")
        if signed and not header:
            problems.append("Body-Sign header missing")
        elif signed and not verify_body_sign(self.key if not step.startswith("kit") else self.kit_key,
                                             reply.body, header):
            problems.append("Body-Sign does not match the answer's bytes")
        if appinfo and got == code == "000000":
            problems += self._appinfo_problems(answer)
        if same is not None and got == code and answer.get(same[0]) != same[1]:
            problems.append(f"{same[0]} {answer.get(same[0])} differs from the first answer's {same[1]}")
        if differs is not None and got == code and answer.get(differs[0]) == differs[1]:
            problems.append(f"{differs[0]} {differs[1]} is the earlier one's, a new one was expected")
        if listed is not None and got == code and listed not in [i.get("instanceId") for i in answer.get("info") or []
                                                                 if isinstance(i, dict)]:
            problems.append(f"info does not hold instance {listed}")
        if same_bytes is not None and reply.body != same_bytes.body:
            problems.append("the answer differs from the first answer's bytes")
        if reply.ms > DEADLINE_S * 1000:
            problems.append(f"answered in {reply.ms / 1000:.1f} s, over the marketplace's {DEADLINE_S:.0f} s")
        self.steps.append(Step(self.scenario, step, code, got, not problems, round(reply.ms, 1),
                               "; ".join(problems)))
        return answer

    def _appinfo_problems(self, answer):
        infos = [answer] if "appInfo" in answer else answer.get("info") or []
        if not infos:
            return ["appInfo missing (the buyer gets no login)"]
        problems = []
        for info in infos:
            app = info.get("appInfo") or {}
            encrypt_type = str(info.get("encryptType") or answer.get("encryptType") or "")
            if not app.get("frontEndUrl"):
                problems.append("appInfo.frontEndUrl missing")
            if encrypt_type:
                for name in ("userName", "password"):
                    try:
                        decrypt_field(self.key, app.get(name) or "", encrypt_type)
                    except Exception:  # noqa: BLE001  any failure is the same finding
                        problems.append(f"appInfo.{name} does not decrypt with the key (encryptType {encrypt_type})")
        return problems

    @property
    def failed(self):
        return [s for s in self.steps if not s.ok]


# --- scenarios ---------------------------------------------------------------------------------

def _g2_lifecycle(sim, kind, steps):
    """New purchase, a retry of it, then ``steps``: (name, body) pairs sent as G2 activities."""
    order = sim.order(kind)
    new = {"activity": "newInstance", "orderId": order, "orderLineId": f"{order}-000001"}
    first = sim.check("newInstance", sim.g2({**new, "businessId": str(uuid.uuid4())}), fields=["instanceId"])
    instance = first.get("instanceId")
    if not instance:
        return
    sim.check("newInstance retried", sim.g2({**new, "businessId": str(uuid.uuid4())}), same=("instanceId", instance))
    for name, body, code in steps(order, instance):
        sim.check(name, sim.g2(body), code=code, appinfo=body["activity"] == "queryInstance")


def _expire(days=30):
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() + days * 86400))


def g2_period(sim):
    def steps(order, iid):
        yield "queryInstance", {"activity": "queryInstance", "instanceId": iid}, "000000"
        yield "refreshInstance RENEWAL", {"activity": "refreshInstance", "instanceId": iid, "orderId": order + "R",
                                          "orderLineId": order + "R-000001", "scene": "RENEWAL",
                                          "expireTime": _expire(60)}, "000000"
        yield "updateInstanceStatus FREEZE", {"activity": "updateInstanceStatus", "instanceId": iid,
                                              "status": "FREEZE"}, "000000"
        yield "updateInstanceStatus UNFREEZE", {"activity": "updateInstanceStatus", "instanceId": iid,
                                                "status": "UNFREEZE"}, "000000"
        yield "upgradeInstance", {"activity": "upgradeInstance", "instanceId": iid, "orderId": order + "U",
                                  "orderLineId": order + "U-000001"}, "000000"
        yield from _release(iid)
    _g2_lifecycle(sim, "period", steps)


def _release(iid):
    body = {"activity": "releaseInstance", "instanceId": iid}
    yield "releaseInstance", body, "000000"
    yield "releaseInstance again (idempotent)", body, "000000"


def g2_onetime(sim):
    _g2_lifecycle(sim, "onetime", lambda order, iid: _release(iid))


def g2_payperuse(sim):
    def steps(order, iid):
        yield "queryInstance", {"activity": "queryInstance", "instanceId": iid}, "000000"
        yield "updateInstanceStatus FREEZE", {"activity": "updateInstanceStatus", "instanceId": iid,
                                              "status": "FREEZE"}, "000000"
        yield from _release(iid)
    _g2_lifecycle(sim, "payperuse", steps)


def _refresh(scene):
    def steps(order, iid):
        yield f"refreshInstance {scene}", {"activity": "refreshInstance", "instanceId": iid, "orderId": order + "R",
                                           "orderLineId": order + "R-000001", "scene": scene,
                                           "expireTime": _expire(30)}, "000000"
        yield from _release(iid)
    return steps


def g2_trial(sim):
    _g2_lifecycle(sim, "trial", _refresh("TRIAL_TO_FORMAL"))


def g2_cancel(sim):
    _g2_lifecycle(sim, "cancel", _refresh("UNSUBSCRIBE_RENEWAL_PERIOD"))


def g2_change(sim):
    """A renewal that changes the specification: the check, the renewal itself, the order notice."""
    def steps(order, iid):
        yield "changeInstanceCheck", {"activity": "changeInstanceCheck", "instanceId": iid,
                                      "productInfo": {"productId": "00301-666666-0--0", "skuCode": "sku-2"}}, "000000"
        yield "orderNotify", {"activity": "orderNotify", "orderId": order + "R",
                              "orderLineId": order + "R-000001"}, "000000"
        yield from _refresh("RENEWAL_CHANGE")(order, iid)
    _g2_lifecycle(sim, "change", steps)


# The Seller Console's debugging cases: fixed MOCK order ids, testFlag 1, repeated round after round.
CONSOLE_RENEW, CONSOLE_CHANGE = "MOCKMONTYRENEW", "MOCKMONTYCHANGE"


def _console_period(iid):
    yield "queryInstance", {"activity": "queryInstance", "instanceId": iid}
    yield "refreshInstance RENEWAL", {"activity": "refreshInstance", "instanceId": iid, "orderId": CONSOLE_RENEW,
                                      "orderLineId": f"{CONSOLE_RENEW}-000001", "scene": "RENEWAL",
                                      "expireTime": _expire(60)}
    for status in ("FREEZE", "UNFREEZE"):
        yield f"updateInstanceStatus {status}", {"activity": "updateInstanceStatus", "instanceId": iid,
                                                 "status": status}
    yield "upgradeInstance", {"activity": "upgradeInstance", "instanceId": iid, "orderId": CONSOLE_CHANGE,
                              "orderLineId": f"{CONSOLE_CHANGE}-000001"}
    yield "releaseInstance", {"activity": "releaseInstance", "instanceId": iid}


def _console_onetime(iid):
    yield "queryInstance", {"activity": "queryInstance", "instanceId": iid}
    yield "releaseInstance", {"activity": "releaseInstance", "instanceId": iid}


CONSOLE_CASES = (("yearly/monthly", "MOCKPERIODYEARNEW", _console_period),
                 ("one-time", "MOCKONETIMENEW", _console_onetime))


def seller_console(sim):
    """Two debugging rounds as the Seller Console repeats them: the same MOCK orders, new
    businessIds. Round 2 must get a live instance (not round 1's released one) and succeed."""
    earlier = {}
    for round_no in (1, 2):
        for kind, order, steps in CONSOLE_CASES:
            label = f"round {round_no} {kind}"
            new = {"activity": "newInstance", "orderId": order, "orderLineId": f"{order}-000001",
                   "businessId": str(uuid.uuid4()), "testFlag": "1"}
            iid = sim.check(f"{label} newInstance", sim.g2(new), fields=["instanceId"],
                            differs=("instanceId", earlier[kind]) if kind in earlier else None).get("instanceId")
            if not iid:
                continue
            earlier.setdefault(kind, iid)
            for name, body in steps(iid):
                query = body["activity"] == "queryInstance"
                sim.check(f"{label} {name}", sim.g2({**body, "testFlag": "1"}), appinfo=query,
                          listed=iid if query else None)


def _g1_new(sim, kind, path="/produce", activity="newInstance", **extra):
    order = sim.order(kind)
    params = {"activity": activity, "customerId": "sim0customer0000000000000000000", "customerName": "Simulator",
              "orderId": order, "productId": "00301-666666-0--0", "skuCode": "sim-sku", **extra}
    return order, params


def g1_lifecycle(sim, kind, extra, steps):
    order, params = _g1_new(sim, kind, **extra)
    first = sim.check("newInstance", sim.g1({**params, "businessId": str(uuid.uuid4())}), fields=["instanceId"],
                      signed=True, appinfo=True)
    iid = first.get("instanceId")
    if not iid:
        return
    sim.check("newInstance retried", sim.g1({**params, "businessId": str(uuid.uuid4())}), signed=True,
              same=("instanceId", iid))
    for name, query, code in steps(order, iid):
        sim.check(name, sim.g1(query), code=code, signed=True, appinfo=query["activity"] == "queryInstance")


def _g1_release(iid, order):
    body = {"activity": "releaseInstance", "instanceId": iid, "orderId": order}
    yield "releaseInstance", body, "000000"
    yield "releaseInstance again (idempotent)", body, "000000"


def g1_period(sim):
    def steps(order, iid):
        yield "queryInstance", {"activity": "queryInstance", "instanceId": iid}, "000000"
        yield "refreshInstance", {"activity": "refreshInstance", "instanceId": iid, "orderId": order + "R",
                                  "expireTime": _expire(60)}, "000000"
        yield "expireInstance", {"activity": "expireInstance", "instanceId": iid, "orderId": order}, "000000"
        yield "refreshInstance after expiry", {"activity": "refreshInstance", "instanceId": iid,
                                               "orderId": order + "R2", "expireTime": _expire(90)}, "000000"
        yield "upgrade", {"activity": "upgrade", "instanceId": iid, "orderId": order + "U",
                          "productId": "00301-666666-0--1"}, "000000"
        yield from _g1_release(iid, order)
    g1_lifecycle(sim, "period", {"expireTime": _expire(30), "periodType": "month", "periodNumber": "1"}, steps)


def g1_onetime(sim):
    g1_lifecycle(sim, "onetime", {"chargingMode": "3"}, lambda order, iid: _g1_release(iid, order))


def g1_payperuse(sim):
    def steps(order, iid):
        yield "queryInstance", {"activity": "queryInstance", "instanceId": iid}, "000000"
        yield "instanceStatus FREEZE", {"activity": "instanceStatus", "instanceId": iid,
                                        "instanceStatus": "FREEZE"}, "000000"
        yield "instanceStatus NORMAL", {"activity": "instanceStatus", "instanceId": iid,
                                        "instanceStatus": "NORMAL"}, "000000"
        yield from _g1_release(iid, order)
    g1_lifecycle(sim, "payperuse", {"chargingMode": "ON_DEMAND"}, steps)


def g1_trial(sim):
    def steps(order, iid):
        yield "refreshInstance trialToFormal", {"activity": "refreshInstance", "instanceId": iid,
                                                "orderId": order + "R", "expireTime": _expire(30),
                                                "trialToFormal": "1"}, "000000"
        yield from _g1_release(iid, order)
    g1_lifecycle(sim, "trial", {"trialFlag": "1", "expireTime": _expire(7)}, steps)


def license_g1(sim):
    """getLicense twice (same license), then renew, expire and release (the last twice)."""
    order, params = _g1_new(sim, "licg1", activity="getLicense", expireTime=_expire(365))
    iid = str(uuid.uuid4())  # instanceId = the first request's businessId (reference, project rule)
    first = sim.check("getLicense", sim.g1({**params, "businessId": iid}, path="/license"),
                      fields=["license"], signed=True)
    if not first.get("license"):
        return
    sim.check("getLicense retried", sim.g1({**params, "businessId": str(uuid.uuid4())}, path="/license"),
              signed=True, same=("license", first["license"]))
    for name, activity, extra in (("refreshLicense", "refreshLicense", {"expireTime": _expire(730)}),
                                  ("expireLicense", "expireLicense", {}),
                                  ("releaseLicense", "releaseLicense", {}),
                                  ("releaseLicense again (idempotent)", "releaseLicense", {})):
        sim.check(name, sim.g1({"activity": activity, "instanceId": iid, "orderId": order, **extra},
                               path="/license"), signed=True, fields=["license"] if activity == "refreshLicense" else ())


def license_2(sim):
    order = sim.order("lic2")
    created = sim.check("newInstance", sim.g2({"activity": "newInstance", "orderId": order,
                                               "orderLineId": f"{order}-000001", "businessId": str(uuid.uuid4())},
                                              path="/license"), fields=["instanceId"])
    iid = created.get("instanceId")
    if not iid:
        return
    ask = {"activity": "getLicenseAsync", "instanceId": iid, "effectiveTime": time.strftime("%Y-%m-%d %H:%M:%S z"),
           "eventId": f"evt-{order}", "deviceFingerprint": f"sim-device-{order}"}
    first = sim.check("getLicenseAsync", sim.g2(ask, path="/license"))
    sim.check("getLicenseAsync retried", sim.g2(ask, path="/license"), same=("license", first.get("license")))
    for name, body in (("releaseInstance", {"activity": "releaseInstance", "instanceId": iid}),
                       ("releaseInstance again (idempotent)", {"activity": "releaseInstance", "instanceId": iid})):
        sim.check(name, sim.g2(body, path="/license"))


def kit(sim):
    scope = {"instanceId": sim.order("kit"), "tenantId": f"tenant-{sim.run_id}"}
    tenant = {**scope, "orderId": sim.order("kit"), "tenantCode": "sim", "name": "Simulator Tenant",
              "domainName": "https://sim.example.com", "flag": 1}
    for label in ("add", "add again (idempotent)"):
        sim.check(f"kit tenantSync {label}", sim.kit("tenantSync", tenant), signed=True)
    if sim.kit_public_key:
        key = serialization.load_pem_public_key(sim.kit_public_key)
        oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        secret = base64.b64encode(key.encrypt(b"sim-client-secret", oaep)).decode()  # type: ignore[union-attr]  # RSA
        sim.check("kit applicationSync (RSA clientSecret)", sim.kit("applicationSync", {
            **scope, "appId": "sim-app", "clientId": "sim-client", "clientSecret": secret, "flag": 1}), signed=True)
    users = [{"userName": f"sim-user-{i}", "name": f"User {i}", "orgCode": "sim-d1", "role": "user", "enable": "true"}
             for i in range(3)]
    for flag, label in ((1, "add"), (1, "add again (idempotent)"), (0, "delete"), (0, "delete again (idempotent)")):
        sim.check(f"kit authSync {label}", sim.kit("authSync", {**scope, "appId": "sim-app", "userList": users,
                                                               "flag": flag}), signed=True)
    org = {**scope, "orgCode": "sim-d1", "orgName": "Simulated Department"}
    for flag, label in ((1, "add"), (0, "delete"), (0, "delete again (idempotent)")):
        sim.check(f"kit singleOrgSync {label}", sim.kit("singleOrgSync", {**org, "flag": flag}), signed=True)
    tree = [{"orgCode": "sim-root", "name": "Root"}, {"orgCode": "sim-a", "name": "A", "parentCode": "sim-root"}]
    for label in ("full tree", "full tree again (idempotent)"):
        sim.check(f"kit allOrgSync {label}", sim.kit("allOrgSync", {**scope, "orgInfo": tree}), signed=True)
    sim.check("kit tenantSync delete", sim.kit("tenantSync", {**scope, "flag": 0}), signed=True)


def probes(sim):
    """Requests the server must refuse, each with the code the marketplace's rules give."""
    order = sim.order("probe")
    new = {"activity": "newInstance", "orderId": order, "orderLineId": f"{order}-000001",
           "businessId": str(uuid.uuid4())}
    sim.check("wrong signature", _wrong_key(sim, new), code="000001")
    stale = int(time.time() * 1000) - 10 * 60 * 1000
    sim.check("stale timestamp (10 min old)", sim.g2(new, timestamp=stale), code="000002")
    raw, query = g2_signed_request(sim.key, {"testFlag": sim.test_flag, **new})
    first = sim._send("POST", "/produce", query, raw, {"Content-Type": "application/json"})
    sim.check("identical resend (same URL and body)", sim._send("POST", "/produce", query, raw,
                                                                  {"Content-Type": "application/json"}),
              code="000000", same_bytes=first)
    other = {**new, "businessId": str(uuid.uuid4())}
    raw2, query2 = g2_signed_request(sim.key, {"testFlag": sim.test_flag, **other}, nonce=query["nonce"])
    sim.check("replayed nonce (another request)", sim._send("POST", "/produce", query2, raw2,
                                                             {"Content-Type": "application/json"}), code="000001")
    broken = b'{"activity": "newInstance", '
    _, query = g2_signed_request(sim.key, broken)
    sim.check("malformed JSON body", sim._send("POST", "/produce", query, broken,
                                               {"Content-Type": "application/json"}), code="000002")
    sim.check("G1 wrong authToken", sim.g1({"activity": "queryInstance", "instanceId": "x"}, key=sim.key + "x"),
              code="000001", signed=True)
    sim.check("kit wrong x-sign", sim.kit("tenantSync", {"tenantId": "t", "flag": 0}, key=sim.kit_key + "x"),
              code="000001")


def tolerance(sim):
    """Correctly signed but oddly shaped requests the server must accept (000000), one step each."""
    order = sim.order("tol")
    made = []  # instances to release at the end

    def new_g2(step, body=None, **send):
        name = f"{order}N{len(made)}"
        body = body or {"activity": "newInstance", "orderId": name, "orderLineId": f"{name}-000001",
                        "businessId": str(uuid.uuid4()), "testFlag": sim.test_flag}
        iid = sim.check(step, sim.g2_as(body, **send), fields=["instanceId"]).get("instanceId")
        if iid:
            made.append(("g2", iid))
        return iid

    iid = new_g2("newInstance (the instance the probes use)")
    if not iid:
        return
    query = {"activity": "queryInstance", "instanceId": iid, "testFlag": sim.test_flag}
    sim.check("G2 testFlag as a JSON number, signed over the string-map form",
              sim.g2_as({**query, "testFlag": int(sim.test_flag)}, raw=canonical_payload(
                  {**query, "testFlag": int(sim.test_flag)}).encode(), signed_form=string_map_payload),
              appinfo=True, listed=iid)
    name = f"{order}Z"
    new_g2('null and "" optional fields (productId null, testFlag "")',
           {"activity": "newInstance", "orderId": name, "orderLineId": f"{name}-000001",
            "businessId": str(uuid.uuid4()), "productId": None, "testFlag": ""})
    refresh = {"activity": "refreshInstance", "instanceId": iid, "orderLineId": f"{order}R-000001"}
    sim.check("refreshInstance expireTime yyyyMMddHHmmssSSS (17 digits)",
              sim.g2({**refresh, "orderId": order + "R", "scene": "RENEWAL", "expireTime": _expire(60) + "123"}))
    sim.check("refreshInstance with an unknown scene",
              sim.g2({**refresh, "orderId": order + "S", "scene": "SOME_NEW_SCENE", "expireTime": _expire(90)}))
    for label, content_type in (("Content-Type text/plain", "text/plain"), ("no Content-Type", None)):
        sim.check(f"body sent with {label}", sim.g2(query, content_type=content_type), appinfo=True, listed=iid)
    sim.check("path with a trailing slash (/produce/)", sim.g2(query, path="/produce/"), appinfo=True, listed=iid)
    many = ",".join([f"sim-absent-{i}" for i in range(120)] + [iid])
    sim.check("queryInstance with 121 ids, the real one among them",
              sim.g2({**query, "instanceId": many}), appinfo=True, listed=iid)
    for label, extra in (("an empty optional parameter (skuCode=)", {"skuCode": ""}),
                         ("unreadable saasExtendParams", {"saasExtendParams": "not%base64{json"})):
        _, params = _g1_new(sim, f"tol{len(made)}", **extra)
        got = sim.check(f"G1 newInstance with {label}", sim.g1({**params, "businessId": str(uuid.uuid4())}),
                        fields=["instanceId"], signed=True, appinfo=True).get("instanceId")
        if got:
            made.append(("g1", got))
    scope = {"instanceId": order, "tenantId": f"tenant-tol-{sim.run_id}"}
    users = [{"userName": "sim-tol-admin", "name": "Admin", "role": "ADMIN", "enable": "TRUE"}]
    sim.check('kit authSync role "ADMIN", enable "TRUE"',
              sim.kit("authSync", {**scope, "appId": "sim-app", "userList": users, "flag": 1}), signed=True)
    tree = [{"orgCode": "sim-x", "name": "X", "parentCode": "sim-y"}, {"orgCode": "sim-y", "name": "Y",
                                                                      "parentCode": "sim-x"},
            {"orgCode": "sim-x", "name": "X again", "parentCode": "sim-y"}]
    sim.check("kit allOrgSync with a cycle and a repeated orgCode",
              sim.kit("allOrgSync", {**scope, "orgInfo": tree}), signed=True)
    sim.check("kit tenantSync under /license/produceAPI/v2/",
              sim.kit("tenantSync", {**scope, "orderId": order, "tenantCode": "sim", "name": "Simulator Tenant",
                                     "domainName": "https://sim.example.com", "flag": 1}, base="/license"),
              signed=True)
    sim.check("kit tenantSync flag 2 with only name",
              sim.kit("tenantSync", {"tenantId": scope["tenantId"], "name": "Renamed", "flag": 2}), signed=True)
    for generation, instance in made:
        release = {"activity": "releaseInstance", "instanceId": instance}
        reply = sim.g2(release) if generation == "g2" else sim.g1({**release, "orderId": order})
        sim.check(f"releaseInstance {instance} (clean-up)", reply, signed=generation == "g1")
    sim.check("kit tenantSync delete (clean-up)", sim.kit("tenantSync", {**scope, "flag": 0}), signed=True)


def _wrong_key(sim, body):
    raw, query = g2_signed_request(sim.key + "-wrong", {"testFlag": sim.test_flag, **body})
    return sim._send("POST", "/produce", query, raw, {"Content-Type": "application/json"})


SHARED = {"kit": kit, "license-g1": license_g1, "license-2": license_2}  # one generation each
G2_SAAS = {"period": g2_period, "onetime": g2_onetime, "payperuse": g2_payperuse, "trial": g2_trial,
           "cancel": g2_cancel, "change": g2_change, "seller-console": seller_console}
G1_SAAS = {"period": g1_period, "onetime": g1_onetime, "payperuse": g1_payperuse, "trial": g1_trial}


def run(sim, suites=SUITES, generation="g2", with_probes=False, with_tolerance=False):
    """Run the chosen suites; G1 has no cancel-renewal scene (G2's UNSUBSCRIBE_RENEWAL_PERIOD only),
    and change and seller-console are G2's. ``with_probes``: requests the server must refuse;
    ``with_tolerance``: odd but correctly signed requests it must accept."""
    tables = {"g2": [("G2", G2_SAAS)], "g1": [("G1", G1_SAAS)], "both": [("G2", G2_SAAS), ("G1", G1_SAAS)]}
    for label, table in tables[generation]:
        for name in suites:
            if name in table:
                sim.scenario = f"{name} {label}"
                table[name](sim)
    for name in suites:
        if name in SHARED:
            sim.scenario = name
            SHARED[name](sim)
    if with_probes:
        sim.scenario = "negative probes"
        probes(sim)
    if with_tolerance:
        sim.scenario = "tolerance probes"
        tolerance(sim)
    return sim


def report(sim, as_json=False):
    if as_json:
        return json.dumps({"ok": not sim.failed, "steps": [asdict(s) for s in sim.steps]}, ensure_ascii=False, indent=1)
    rows = [("scenario", "step", "expected", "got", "ms", "")] + [
        (s.scenario, s.step, s.expected, s.got, f"{s.ms:.0f}", "ok" if s.ok else "FAIL: " + s.reason)
        for s in sim.steps]
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r[:5], widths, strict=True)) + "  " + r[5] for r in rows]
    lines.append(f"{len(sim.steps) - len(sim.failed)} of {len(sim.steps)} steps passed")
    return "\n".join(lines)


def simulate_options(function):
    options = [
        click.argument("base_url"),
        click.option("--suite", "suites", multiple=True, type=click.Choice(SUITES),
                     help="Scenario suite (repeatable); default: all."),
        click.option("--generation", type=click.Choice(["g2", "g1", "both"]), default="g2", show_default=True),
        click.option("--probes", is_flag=True, help="Also send requests the server must refuse."),
        click.option("--tolerance", is_flag=True,
                     help="Also send correctly signed but oddly shaped requests the server must accept."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table."),
        click.option("--test-flag", type=click.Choice(["1", "0"]), default="1", show_default=True,
                     help="1 marks everything as test data; 0 sends it as real orders."),
        click.option("--kit-public-key", type=click.Path(exists=True, dir_okay=False),
                     help="The Kit public key (PEM) registered in the Seller Console, to encrypt clientSecret."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def execute(base_url, key, kit_key, suites, generation, probes_, as_json, test_flag, kit_public_key, tolerance_=False):
    if not key:
        raise click.UsageError("the basic Key is needed (--key or KOO_ACCESS_KEY)")
    public = open(kit_public_key, "rb").read() if kit_public_key else None
    sim = run(Simulator(base_url, key, kit_key, public, test_flag), suites or SUITES, generation, probes_,
              tolerance_)
    click.echo(report(sim, as_json))
    sys.exit(1 if sim.failed else 0)


@click.command("isvapp-sim")
@simulate_options
@click.option("--key", envvar="KOO_ACCESS_KEY", help="The basic Key (or $KOO_ACCESS_KEY).")
@click.option("--kit-key", envvar="KOO_KIT_ACCESS_KEY", help="The Kit key (or $KOO_KIT_ACCESS_KEY; default: --key).")
def main(base_url, suites, generation, probes, tolerance, as_json, test_flag, kit_public_key, key, kit_key):
    """Play the KooGallery marketplace against BASE_URL (e.g. https://isv.example.com).

    Suites: period, onetime, payperuse, trial, cancel, change (changeInstanceCheck, orderNotify,
    RENEWAL_CHANGE), seller-console (two debugging rounds with the console's MOCK orders), kit,
    license-g1, license-2. --probes: requests to refuse; --tolerance: odd ones to accept."""
    execute(base_url, key, kit_key, suites, generation, probes, as_json, test_flag, kit_public_key, tolerance)


@click.command("simulate")
@simulate_options
@with_appcontext
def simulate_command(base_url, suites, generation, probes, tolerance, as_json, test_flag, kit_public_key):
    """Play the marketplace against BASE_URL with this app's keys (see also isvapp-sim).

    Suites and options as isvapp-sim: seller-console repeats the console's debugging rounds,
    --tolerance sends correctly signed odd requests the server must accept."""
    from flask import current_app
    settings = current_app.extensions["isvapp"]
    if kit_public_key is None and settings.kit_rsa_private_key:
        import os
        if os.path.exists(settings.kit_rsa_private_key):
            private = serialization.load_pem_private_key(open(settings.kit_rsa_private_key, "rb").read(), None)
            path = os.path.join(current_app.instance_path, "kit_public.pem")
            with open(path, "wb") as f:
                f.write(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
            kit_public_key = path
    execute(base_url, settings.access_key, settings.kit_access_key, suites, generation, probes, as_json,
            test_flag, kit_public_key, tolerance)


def init_app(app):
    app.cli.add_command(simulate_command)
