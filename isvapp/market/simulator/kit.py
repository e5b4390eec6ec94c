"""The Kit suite: tenant, app, user and department sync, signed with the Kit key.
"""
import base64

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


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
