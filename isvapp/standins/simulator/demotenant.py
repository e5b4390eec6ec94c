"""A tenant to try the buyer's login with: the marketplace's Kit sync played once against a
running server, leaving a test enterprise, its app and three users for ``isvapp fake-idp``.

The simulator's own Kit suite deletes what it syncs and plays an IdP of its own; a merchant who
wants to click through the login needs something that stays. Everything goes through the
server's marketplace routes, signed with this app's keys (testFlag=1), so the rows are exactly
what a real sync stores, and running it again changes nothing (a fixed order, the same syncs).
"""

import base64

import click
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from flask import current_app
from flask.cli import with_appcontext

from .client import Simulator

ORDER = "DEMOLOGIN0001"
TENANT_ID, TENANT_CODE, APP_ID = "demo-tenant", "demo", "demo-app"
CLIENT_ID, CLIENT_SECRET = "demo-client", "demo-client-secret"  # a development app's, known to fake-idp
USERS = [
    {"userName": "alice", "name": "Alice", "orgCode": "demo-d1", "role": "admin", "enable": "true"},
    {"userName": "bob", "name": "Bob", "orgCode": "demo-d1", "role": "user", "enable": "true"},
    {"userName": "carol", "name": "Carol", "orgCode": "demo-d1", "role": "user", "enable": "false"},
]


def sync_demo_tenant(sim, idp_url, public_pem):
    """newInstance, tenantSync, applicationSync, authSync: the steps, checked as the Seller
    Console checks them (sim.steps says how each went)."""
    instance = sim.check(
        "newInstance (the demo enterprise's subscription)",
        sim.g2(
            {
                "activity": "newInstance",
                "orderId": ORDER,
                "orderLineId": f"{ORDER}-000001",
                "businessId": f"{ORDER}-business",
            }
        ),
        fields=["instanceId"],
    ).get("instanceId")
    if not instance:
        return
    scope = {"instanceId": instance, "tenantId": TENANT_ID}
    tenant = {**scope, "orderId": ORDER, "tenantCode": TENANT_CODE, "name": "Demo Enterprise", "domainName": idp_url}
    sim.check("tenantSync", sim.kit("tenantSync", {**tenant, "flag": 1}), signed=True)
    key = serialization.load_pem_public_key(public_pem)
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    secret = base64.b64encode(key.encrypt(CLIENT_SECRET.encode(), oaep)).decode()  # type: ignore[union-attr]  # RSA
    app = {**scope, "appId": APP_ID, "name": "Demo App", "clientId": CLIENT_ID, "clientSecret": secret, "flag": 1}
    sim.check("applicationSync", sim.kit("applicationSync", app), signed=True)
    users = {**scope, "appId": APP_ID, "userList": USERS, "flag": 1}
    sim.check("authSync (alice, bob; carol disabled)", sim.kit("authSync", users), signed=True)


@click.command("fake-idp-tenant")
@click.argument("base_url", default="http://127.0.0.1:8000")
@click.option("--idp-port", default=8901, show_default=True, help="The port `isvapp fake-idp` serves on.")
@with_appcontext
def fake_idp_tenant_command(base_url, idp_port):
    """Leave a test enterprise ("demo"), its app and users alice, bob and carol on the server at
    BASE_URL, with its IdP at `isvapp fake-idp`: then open BASE_URL/login/demo."""
    from . import kit_public_key_pem

    settings = current_app.extensions["isvapp"]
    public = kit_public_key_pem(settings)
    if public is None:
        raise click.ClickException("no Kit key yet: run `.venv/bin/isvapp kit-keygen` first, then this again")
    if not settings.access_key:
        raise click.ClickException("KOO_ACCESS_KEY is not set (instance/config.py)")
    sim = Simulator(base_url, settings.access_key, settings.kit_access_key, public, "1")
    sim.scenario = "demo tenant"
    idp_url = f"http://127.0.0.1:{idp_port}"
    sync_demo_tenant(sim, idp_url, public)
    for step in sim.steps:
        click.echo(f"  {'ok  ' if step.ok else 'FAIL'} {step.step}{'' if step.ok else ': ' + step.reason}")
    if sim.failed:
        raise click.ClickException(f"the server at {base_url} did not take the demo tenant (above)")
    password = "fake-password"
    click.echo(
        f"\nThe demo enterprise is in place, its IdP at {idp_url}. Next:\n"
        f"  1. Serve its IdP:   .venv/bin/isvapp fake-idp --port {idp_port}\n"
        f"  2. Open the login:  {base_url.rstrip('/')}/login/demo   (or {base_url.rstrip('/')}/login and type: demo)\n"
        f"  3. Sign in as alice or bob (password {password}); carol is disabled and is refused.\n"
        "The server must allow an IdP on this host: start it with ISVAPP_LOGIN_ALLOW_LOOPBACK_IDP=true "
        "(development only; never in production)."
    )
    if not current_app.extensions["isvapp"].login.allow_loopback_idp:
        click.echo("Note: LOGIN_ALLOW_LOOPBACK_IDP is off in this configuration.", err=True)
