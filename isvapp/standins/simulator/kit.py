"""The Kit suite: tenant, app, user and department sync, signed with the Kit key; against a
server on this host, the account login too (login.py), between the syncs and the deletes.
"""

import base64
import contextlib
import uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from . import login


def kit(sim):
    secret_text = "sim-client-secret"
    local = login.is_local(sim.base) and sim.kit_public_key is not None  # the login needs the app's secret
    instance = None
    if local:  # a live instance for the tenant, so that its users may log in
        order = sim.order("kitnew")
        instance = sim.check(
            "kit newInstance (the tenant's instance)",
            sim.g2(
                {
                    "activity": "newInstance",
                    "orderId": order,
                    "orderLineId": f"{order}-000001",
                    "businessId": str(uuid.uuid4()),
                }
            ),
            fields=["instanceId"],
        ).get("instanceId")
    scope = {"instanceId": instance or sim.order("kit"), "tenantId": f"tenant-{sim.run_id}"}
    users = [
        {"userName": f"sim-user-{i}", "name": f"User {i}", "orgCode": "sim-d1", "role": "user", "enable": "true"}
        for i in range(3)
    ]
    idp = login.fake_idp(sim, scope["tenantId"], "sim-client", secret_text, users) if instance else None
    tenant_code = f"sim-{sim.run_id}"
    tenant = {
        **scope,
        "orderId": sim.order("kit"),
        "tenantCode": tenant_code,
        "name": "Simulator Tenant",
        "domainName": idp.url if idp else "https://sim.example.com",
        "flag": 1,
    }
    with idp or contextlib.nullcontext():
        _syncs(sim, scope, tenant, users, secret_text)
        if idp:
            login.account_login(sim, idp.url, tenant_code, "sim-app", users[0]["userName"])
        _deletes(sim, scope, users)


def _syncs(sim, scope, tenant, users, secret_text):
    for label in ("add", "add again (idempotent)"):
        sim.check(f"kit tenantSync {label}", sim.kit("tenantSync", tenant), signed=True)
    if sim.kit_public_key:
        key = serialization.load_pem_public_key(sim.kit_public_key)
        oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        secret = base64.b64encode(key.encrypt(secret_text.encode(), oaep)).decode()  # type: ignore[union-attr]  # RSA
        sim.check(
            "kit applicationSync (RSA clientSecret)",
            sim.kit(
                "applicationSync",
                {**scope, "appId": "sim-app", "clientId": "sim-client", "clientSecret": secret, "flag": 1},
            ),
            signed=True,
        )
    for flag, label in ((1, "add"), (1, "add again (idempotent)")):
        sim.check(
            f"kit authSync {label}",
            sim.kit("authSync", {**scope, "appId": "sim-app", "userList": users, "flag": flag}),
            signed=True,
        )
    org = {**scope, "orgCode": "sim-d1", "orgName": "Simulated Department"}
    for flag, label in ((1, "add"), (0, "delete"), (0, "delete again (idempotent)")):
        sim.check(f"kit singleOrgSync {label}", sim.kit("singleOrgSync", {**org, "flag": flag}), signed=True)
    tree = [{"orgCode": "sim-root", "name": "Root"}, {"orgCode": "sim-a", "name": "A", "parentCode": "sim-root"}]
    for label in ("full tree", "full tree again (idempotent)"):
        sim.check(f"kit allOrgSync {label}", sim.kit("allOrgSync", {**scope, "orgInfo": tree}), signed=True)


def _deletes(sim, scope, users):
    for flag, label in ((0, "delete"), (0, "delete again (idempotent)")):
        sim.check(
            f"kit authSync {label}",
            sim.kit("authSync", {**scope, "appId": "sim-app", "userList": users, "flag": flag}),
            signed=True,
        )
    sim.check("kit tenantSync delete", sim.kit("tenantSync", {**scope, "flag": 0}), signed=True)
