"""The simulator's client: signs and sends each request as the marketplace would, and checks
the answer the way the Seller Console does (result code, fields, Body-Sign, appInfo, 5 s).

Every request carries the simulator's mark (isvapp.koo.simulated.HEADER, with this run's id): the
marketplace never sends it, so the server can show what the merchant simulated apart from what the
Seller Console debugged. ``mark=False`` sends none (a test playing the Seller Console itself).
"""

import http.client
import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from ...koo.fieldcrypto import decrypt_field
from ...koo.signing import (
    g1_signed_params,
    g2_signature,
    g2_signed_request,
    kit_signed_request,
    new_nonce,
    verify_body_sign,
)
from ...koo.simulated import HEADER

DEADLINE_S = 5.0


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
class Skipped:
    """A suite that could not run against this server, and how to run it."""

    scenario: str
    reason: str


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
    def __init__(self, base_url, key, kit_key=None, kit_public_key=None, test_flag="1", timeout=10.0, mark=True):
        base = base_url.rstrip("/")
        for suffix in ("/produce", "/license"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        self.base, self.key, self.kit_key = base, key, kit_key or key
        self.kit_public_key = kit_public_key
        self.test_flag, self.timeout = test_flag, timeout
        self.run_id = time.strftime("%m%d%H%M%S") + uuid.uuid4().hex[:4].upper()
        self.marks = {HEADER: self.run_id} if mark else {}  # sent on every request
        self.steps, self.skipped = [], []
        self.scenario = ""
        self.license_code = "PLXXXXXX"  # the license-relay suite's code: the console's test code, or the fake's

    # --- sending ----------------------------------------------------------------------------

    def _send(self, method, path, query=None, body=None, headers=None):
        url = self.base + path + ("?" + urlencode(query) if query else "")
        request = urllib.request.Request(url, data=body, method=method, headers={**self.marks, **(headers or {})})
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
            parts.netloc, timeout=self.timeout
        )
        started = time.perf_counter()
        try:
            connection.putrequest("POST", parts.path + path + "?" + urlencode(query), skip_accept_encoding=True)
            connection.putheader("Content-Length", str(len(body)))
            for name, value in self.marks.items():
                connection.putheader(name, value)
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
        query = {"signature": g2_signature(self.key, nonce, timestamp, signed), "timestamp": timestamp, "nonce": nonce}
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

    def check(
        self,
        step,
        reply,
        code="000000",
        fields=(),
        signed=False,
        appinfo=False,
        same=None,
        same_bytes=None,
        differs=None,
        listed=None,
    ):
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
        elif signed and not verify_body_sign(
            self.key if not step.startswith("kit") else self.kit_key, reply.body, header
        ):
            problems.append("Body-Sign does not match the answer's bytes")
        if appinfo and got == code == "000000":
            problems += self._appinfo_problems(answer)
        if same is not None and got == code and answer.get(same[0]) != same[1]:
            problems.append(f"{same[0]} {answer.get(same[0])} differs from the first answer's {same[1]}")
        if differs is not None and got == code and answer.get(differs[0]) == differs[1]:
            problems.append(f"{differs[0]} {differs[1]} is the earlier one's, a new one was expected")
        if (
            listed is not None
            and got == code
            and listed not in [i.get("instanceId") for i in answer.get("info") or [] if isinstance(i, dict)]
        ):
            problems.append(f"info does not hold instance {listed}")
        if same_bytes is not None and reply.body != same_bytes.body:
            problems.append("the answer differs from the first answer's bytes")
        if reply.ms > DEADLINE_S * 1000:
            problems.append(f"answered in {reply.ms / 1000:.1f} s, over the marketplace's {DEADLINE_S:.0f} s")
        self.steps.append(Step(self.scenario, step, code, got, not problems, round(reply.ms, 1), "; ".join(problems)))
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

    def skip(self, reason):
        """Record that the current scenario cannot run here, and why (the report says so)."""
        self.skipped.append(Skipped(self.scenario, reason))

    @property
    def failed(self):
        return [s for s in self.steps if not s.ok]


def expire_time(days=30):
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() + days * 86400))
