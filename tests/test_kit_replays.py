"""An old signed Kit request cannot be made new, nor sent to another interface, through a real
gunicorn: a repeated JSON key is refused on every signed route, the G1 Kit time checked is the
value that was signed, the sorted-fields string is checked for ambiguity, a Kit body shaped for one
interface is not acted on at another, and a replay entry outlives its window."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
from isvapp.background import maintenance
from isvapp.koo import codes
from isvapp.koo.signing import g1_kit_signed_request, g1_time, g2_signed_request, kit_signed_request
from isvapp.storage.models import Department, Instance, KitState, Tenant
from sqlalchemy import func, select

from .helpers import KEY, KIT_KEY, SCOPE, TENANT
from .live import LiveServer
from .tiers import live_fixture


@live_fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module: each test sends its own tenants and orders, and counts only those
    (or what its own requests added)."""
    env = {"ISVAPP_KOO_ACCESS_KEY": KEY, "ISVAPP_KOO_KIT_ACCESS_KEY": KIT_KEY}
    with LiveServer(tmp_path_factory.mktemp("kit-replays"), workers=2, env=env) as live:
        yield live


def rows(server, model, *where):
    engine = server.engine()
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(model.__table__).where(*where)).scalar_one()
    finally:
        engine.dispose()


def post(server, path, raw, headers):
    answer = requests.post(server.url + path, data=raw, headers=headers, timeout=10)
    assert answer.status_code == 200
    return answer.json()


def test_a_fresh_timestamp_put_before_a_30_day_old_signed_body_is_refused(server):
    tenant = {**TENANT, "tenantId": "tenant-old", "instanceId": "inst-old"}
    old = g1_time(datetime.now(UTC) - timedelta(days=30))
    raw, headers = g1_kit_signed_request(KIT_KEY, tenant, formula="sorted-fields", timestamp=old)
    assert post(server, "/produce/produceAPI/tenantSync", raw, headers)["resultCode"] == codes.INVALID_PARAM  # stale
    forged = b'{"timeStamp":"' + g1_time().encode() + b'",' + raw[1:]
    answer = post(server, "/produce/produceAPI/tenantSync", forged, headers)
    assert answer["resultCode"] == codes.AUTH_FAILED and 'repeats the key "timeStamp"' in answer["resultMsg"]
    assert rows(server, Tenant, Tenant.tenant_id == "tenant-old") == 0


def test_a_repeated_key_is_refused_on_every_signed_route(server):
    raw = (
        b'{"activity":"newInstance","orderId":"CS-DUP-A","orderLineId":"CS-DUP-A-1","businessId":"b-dup",'
        b'"testFlag":"0","orderId":"CS-DUP-B"}'
    )
    instances = rows(server, Instance)
    _, query = g2_signed_request(KEY, raw)
    answer = requests.post(server.url + "/produce", params=query, data=raw, timeout=10).json()
    assert answer["resultCode"] == codes.INVALID_PARAM and 'repeats the key "orderId"' in answer["resultMsg"]
    kit_raw = json.dumps({**TENANT, "tenantId": "tenant-dup"}).encode()[:-1] + b',"flag":0}'
    _, headers = kit_signed_request(KIT_KEY, kit_raw)
    answer = post(server, "/produce/produceAPI/v2/tenantSync", kit_raw, headers)
    assert answer["resultCode"] == codes.INVALID_PARAM and 'repeats the key "flag"' in answer["resultMsg"]
    assert rows(server, Instance) == instances and rows(server, Tenant, Tenant.tenant_id == "tenant-dup") == 0


def test_a_sorted_fields_value_that_reads_as_two_fields_is_refused(server):
    tenant = {**TENANT, "tenantId": "tenant-amb", "name": "x&flag=0"}
    raw, headers = g1_kit_signed_request(KIT_KEY, tenant, formula="sorted-fields")
    answer = post(server, "/produce/produceAPI/tenantSync", raw, headers)
    assert answer["resultCode"] == codes.AUTH_FAILED and "ambiguous" in answer["resultMsg"]
    assert rows(server, Tenant, Tenant.tenant_id == "tenant-amb") == 0


@pytest.mark.parametrize("generation", ["g2", "g1"])
def test_a_department_delete_sent_to_tenant_sync_does_not_delete_the_tenant(server, generation):
    tenant = {**TENANT, "tenantId": f"tenant-{generation}", "instanceId": f"inst-{generation}"}
    scope = {**SCOPE, "tenantId": tenant["tenantId"], "instanceId": tenant["instanceId"]}
    sign = (
        (lambda body: kit_signed_request(KIT_KEY, body))
        if generation == "g2"
        else (lambda body: g1_kit_signed_request(KIT_KEY, body))
    )
    base = "/produce/produceAPI/v2/" if generation == "g2" else "/produce/produceAPI/"
    assert post(server, base + "tenantSync", *sign(tenant))["resultCode"] == codes.SUCCESS
    delete = {**scope, "orgCode": "d1", "flag": 0, "testFlag": 0}
    raw, headers = sign(delete)
    answer = post(server, base + "tenantSync", raw, headers)  # captured at singleOrgSync, sent here
    assert (
        answer["resultCode"] == codes.INVALID_PARAM
        and "orgCode" in answer["resultMsg"]
        and "singleOrgSync" in answer["resultMsg"]
    )
    assert rows(server, Tenant, Tenant.tenant_id == tenant["tenantId"], Tenant.state == KitState.ACTIVE) == 1
    assert post(server, base + "singleOrgSync", raw, headers)["resultCode"] == codes.SUCCESS  # where it belongs
    assert rows(server, Department, Department.tenant_id == tenant["tenantId"]) == 0


@pytest.mark.parametrize("window_s", [60, 86400])
def test_a_replay_entry_lives_as_long_as_its_timestamp_can_pass(window_s):
    """Accepted at t, a timestamp T has |t - T| <= W and passes until T + W <= t + 2W."""
    assert maintenance.replay_keep_s(window_s) >= 2 * window_s + maintenance.HOST_CLOCK_MARGIN_S
