"""The license-relay suite: the merchant's installed software, through the License relay
(/relay/v1): activate a license code, verify it, report usage, and the refusals it must get.

The server makes the marketplace calls, so the code must be one the marketplace knows: the
Seller Console's test code (申请测试授权码) against the real one, PLXXXXXX against the fake
marketplace (`isvapp fake-market`). --license-code sets it.

A server that cannot call the marketplace at all (no KOO_AK/KOO_SK: a fresh install) answers the
activation 503 with the error ``relay_not_configured``; the suite is then skipped, with a line in
the report saying why and how to run it, rather than failed: a SaaS merchant never needs the relay.
Any other answer is checked as usual, so against another server nothing is skipped unless it says
exactly that.
"""

import json
import time
import urllib.error
import urllib.request

from .client import Step

NOT_CONFIGURED = "relay_not_configured"  # isvapp.domain.licensecodes: the server has no open API
HOW_TO_RUN = (
    "this server cannot call the marketplace's open API (the relay answered 503 {error}: {message}). "
    "To run it: start `.venv/bin/isvapp fake-market` with ISVAPP_KOO_AK and ISVAPP_KOO_SK set, and the "
    'server with the same two and ISVAPP_KOO_API_BASE_URL pointing at it (README, "Developing '
    "offline\"); or set your seller KOO_AK and KOO_SK and pass the Seller Console's test code with "
    "--license-code."
)


def _post(sim, path, body, token=None):
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(
        sim.base + "/relay/v1/" + path, data=json.dumps(body).encode(), headers={**sim.marks, **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=sim.timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = {}
    return status, answer if isinstance(answer, dict) else {}


def _step(sim, name, path, body, expected, token=None, fields=(), sent=None):
    """One call and its check; ``sent``: (status, answer, started) of a call already made."""
    started = time.perf_counter() if sent is None else sent[2]
    status, answer = _post(sim, path, body, token) if sent is None else sent[:2]
    problems = [] if status == expected else [f"HTTP {status}: {answer.get('message') or answer}"[:200]]
    problems += [f"no {f} in the answer" for f in fields if not problems and not answer.get(f)]
    sim.steps.append(
        Step(
            sim.scenario,
            name,
            f"HTTP {expected}",
            f"HTTP {status}",
            not problems,
            round((time.perf_counter() - started) * 1000, 1),
            "; ".join(problems),
        )
    )
    return answer


def license_relay(sim):
    code = sim.license_code
    started = time.perf_counter()
    status, answer = _post(sim, "activate", {"license": code})
    if status == 503 and answer.get("error") == NOT_CONFIGURED:
        sim.skip(HOW_TO_RUN.format(error=NOT_CONFIGURED, message=answer.get("message", "")))
        return
    activated = _step(
        sim,
        "activate",
        "activate",
        {"license": code},
        200,
        fields=("installationToken", "status"),
        sent=(status, answer, started),
    )
    token = activated.get("installationToken")
    if not token:
        return
    _step(
        sim,
        "verify",
        "verify",
        {"license": code, "account": f"sim-{sim.run_id}"},
        200,
        token,
        fields=("status", "verifiedAt"),
    )
    _step(sim, "report usage (one client)", "usage", {"license": code, "id": f"sim-{sim.run_id}"}, 202, token)
    _step(
        sim,
        "verify refused (wrong installation secret)",
        "verify",
        {"license": code},
        401,
        token.split(".")[0] + ".wrong-secret",
    )
    _step(sim, "activate refused (malformed code)", "activate", {"license": "P" * 65}, 400)
