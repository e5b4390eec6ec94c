"""The usage and entitlement API through a real gunicorn (issue 33, review points 5 and 7): usage is
recorded only for pay-per-use or package instances and only inside their life, its times are
bounded, and a token is used only for its scopes and its product or key.

Instances are made by signed newInstance calls over HTTP; what the order-details job would have
stored (charging mode, product) and how long ago the instance was made are written to the
server's database directly, as the job and the clock would have.
"""

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from isvapp import create_app
from isvapp.domain import apitokens
from isvapp.koo.signing import g2_signed_request, key_fingerprint
from isvapp.storage.models import ApiToken, Instance, InstanceState, TokenScope, UsageRecord
from sqlalchemy import func, insert, select, update

from .helpers import KEY, table_row
from .live import LIVE_SECRET_KEY, LiveServer

pytestmark = pytest.mark.live  # every test here talks to a real gunicorn

NOW = datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
MADE = NOW - timedelta(days=2)  # when the instances below were made
HOUR = NOW - timedelta(days=1)  # usage for this hour is inside every instance's life


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("usageapi")
    with LiveServer(folder, workers=1, env={"ISVAPP_KOO_ACCESS_KEY": KEY}) as live:
        live.app = create_app(
            {
                "TESTING": True,
                "INSTANCE_PATH": str(folder),
                "SECRET_KEY": LIVE_SECRET_KEY,
                "KOO_ACCESS_KEY": KEY,
                "SQLALCHEMY_DATABASE_URI": live.database_uri,
            }
        )
        live.db = live.engine()
        yield live
        live.db.dispose()
        log = (folder / "gunicorn.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def instance(server, mode, product="p-A", released=None):
    """A new instance over HTTP, then what its order details say and when it was made."""
    order = "CS" + uuid.uuid4().hex[:12]
    raw, query = g2_signed_request(
        KEY,
        {
            "activity": "newInstance",
            "orderId": order,
            "orderLineId": order + "-000001",
            "businessId": str(uuid.uuid4()),
            "testFlag": "0",
        },
    )
    answer = requests.post(server.url + "/produce", params=query, data=raw, timeout=10).json()
    iid = answer["instanceId"]
    values = {"charging_mode": mode, "product_id": product, "created_at": MADE}
    if released:
        values.update(state=InstanceState.RELEASED, released_at=released)
    with server.db.begin() as connection:
        connection.execute(update(Instance).where(Instance.instance_id == iid).values(**values))
    return iid


def token(server, scopes=TokenScope.ALL, product=None, key=None):
    """A token as the pages make one; bound to this server's key unless a product or key is given."""
    if product is None and key is None:
        key = key_fingerprint(KEY)
    with server.app.app_context():
        return apitokens.create_token("test", scopes, product, key, keys=(key,))


def stored(server, iid):
    with server.db.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(UsageRecord).where(UsageRecord.instance_id == iid)
        ).scalar_one()


def usage(server, bearer, iid, begin=HOUR, hours=1, **fields):
    body = {
        "instanceId": iid,
        "usageValue": 1000,
        "beginTime": begin.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endTime": (begin + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **fields,
    }
    answer = requests.post(
        server.url + "/api/v1/usage", json=body, headers={"Authorization": f"Bearer {bearer}"}, timeout=10
    )
    return answer.status_code, answer.json()


# --- point 5: only metered instances, only inside their life ----------------------------------------


@pytest.mark.parametrize("mode", ["ON_DEMAND", "ON_DEMAND_PKG"])
def test_usage_is_recorded_for_a_pay_per_use_or_package_instance(server, mode):
    iid = instance(server, mode)
    status, answer = usage(server, token(server), iid)
    assert status == 201 and answer["meteringSn"], answer
    assert stored(server, iid) == 1


def test_a_yearly_instance_takes_no_usage(server):
    iid = instance(server, "PERIOD")
    status, answer = usage(server, token(server), iid)
    assert status == 409 and answer["error"] == "not_pay_per_use", answer
    assert "PERIOD" in answer["message"] and "pay-per-use" in answer["message"]
    assert stored(server, iid) == 0


def test_an_instance_whose_charging_mode_is_not_known_yet_says_so(server):
    iid = instance(server, None)
    status, answer = usage(server, token(server), iid)
    assert status == 409 and answer["error"] == "charging_mode_unknown" and "retry" in answer["message"], answer
    assert stored(server, iid) == 0


def test_a_released_instance_takes_no_usage_after_its_release(server):
    released = NOW - timedelta(hours=5)
    iid = instance(server, "ON_DEMAND", released=released)
    status, answer = usage(server, token(server), iid, begin=NOW - timedelta(hours=3))
    assert status == 409 and answer["error"] == "instance_released", answer
    assert iid in answer["message"] and "released" in answer["message"]
    assert stored(server, iid) == 0
    # Usage of an hour it still lived is billed, even reported after the release.
    assert usage(server, token(server), iid, begin=released - timedelta(hours=2))[0] == 201


def test_usage_from_before_the_instance_was_made_is_refused(server):
    iid = instance(server, "ON_DEMAND")
    status, answer = usage(server, token(server), iid, begin=MADE - timedelta(hours=3))
    assert status == 409 and answer["error"] == "outside_instance_life" and "beginTime" in answer["message"], answer
    assert stored(server, iid) == 0


def test_an_identical_resend_gets_the_first_answer_after_the_release(server):
    iid = instance(server, "ON_DEMAND")
    bearer = token(server)
    first = usage(server, bearer, iid, meteringSn="sn-" + iid)
    with server.db.begin() as connection:
        connection.execute(
            update(Instance).where(Instance.instance_id == iid).values(state=InstanceState.RELEASED, released_at=NOW)
        )
    assert usage(server, bearer, iid, meteringSn="sn-" + iid) == first and first[0] == 201
    assert stored(server, iid) == 1


# --- point 7: times a marketplace would take -----------------------------------------------------------


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"endTime": "9999-12-31T23:59:59Z"}, "endTime"),
        ({"beginTime": "0001-01-01T00:00:00Z"}, "beginTime"),
        ({"beginTime": "2000-01-01T00:00:00Z"}, "beginTime"),
    ],
)
def test_times_out_of_range_are_a_400_naming_the_field(server, fields, named):
    iid = instance(server, "ON_DEMAND")
    status, answer = usage(server, token(server), iid, **fields)
    assert status == 400 and answer["error"] == "invalid_request" and answer["message"].startswith(named), answer
    assert stored(server, iid) == 0


# --- point 5: a token's scopes, and its product or key ----------------------------------------------


def entitlement(server, bearer, iid):
    answer = requests.get(
        server.url + f"/api/v1/entitlements/instances/{iid}", headers={"Authorization": f"Bearer {bearer}"}, timeout=10
    )
    return answer.status_code, answer.json()


def test_a_token_is_used_only_for_its_scopes(server):
    iid = instance(server, "ON_DEMAND")
    reader, recorder = token(server, [TokenScope.ENTITLEMENTS]), token(server, [TokenScope.USAGE])
    status, answer = usage(server, reader, iid)
    assert status == 403 and answer["error"] == "forbidden" and '"usage"' in answer["message"], answer
    status, answer = entitlement(server, recorder, iid)
    assert status == 403 and answer["error"] == "forbidden" and '"entitlements"' in answer["message"], answer
    assert entitlement(server, reader, iid)[0] == 200 and usage(server, recorder, iid)[0] == 201
    assert stored(server, iid) == 1


def test_a_token_records_usage_only_for_its_product_or_key(server):
    ours, theirs = instance(server, "ON_DEMAND", product="p-A"), instance(server, "ON_DEMAND", product="p-B")
    for_a = token(server, [TokenScope.USAGE], product="p-A")
    status, answer = usage(server, for_a, theirs)
    assert status == 403 and answer["error"] == "forbidden" and "p-A" in answer["message"], answer
    assert usage(server, for_a, ours)[0] == 201
    other_key = token(server, [TokenScope.USAGE], key=key_fingerprint("another key"))
    assert usage(server, other_key, ours, begin=HOUR + timedelta(hours=1))[0] == 403
    assert usage(server, token(server, [TokenScope.USAGE], key=key_fingerprint(KEY)), theirs)[0] == 201
    assert (stored(server, ours), stored(server, theirs)) == (1, 1)


def test_a_token_made_before_scopes_keeps_every_scope_for_any_product(server):
    """Migration 0019 leaves the old rows' scopes, product and key empty."""
    iid = instance(server, "ON_DEMAND", product="p-Z")
    bearer = "isvapp_" + uuid.uuid4().hex
    from isvapp.koo.signing import secret_digest

    with server.db.begin() as connection:
        connection.execute(
            insert(ApiToken).values(name="old", digest=secret_digest(bearer), hint=bearer[:11], created_at=NOW)
        )
    assert entitlement(server, bearer, iid)[0] == 200 and usage(server, bearer, iid)[0] == 201


# --- the API tokens page: a token's scopes and product are chosen when it is made ---------------------


def page_session(server):
    from isvapp.dashboard import security

    from .helpers import PASSWORD
    from .helpers import token as form_token

    with server.app.app_context():
        security.set_password("boss", PASSWORD)
    session = requests.Session()
    page = session.get(server.url + "/admin/login", timeout=10).text
    session.post(
        server.url + "/admin/login",
        data={"name": "boss", "password": PASSWORD, "csrf_token": form_token(page)},
        timeout=10,
    )
    return session, form_token


def tokens_made(server):
    with server.db.connect() as connection:
        return connection.execute(select(func.count()).select_from(ApiToken)).scalar_one()


def test_the_api_tokens_page_makes_a_token_for_its_scopes_and_product(server):
    session, form_token = page_session(server)
    url = server.url + "/admin/api-tokens"
    page = session.get(url, timeout=10).text
    assert key_fingerprint(KEY) in page  # the key to choose, by fingerprint only
    before = tokens_made(server)
    for form, words in (
        ({"name": "crm", "scope": "usage"}, "Choose the product"),
        ({"name": "crm", "product_id": "p-A"}, "Choose what the token is for"),
        ({"name": "crm", "scope": "usage", "key": "sha256:000000000000"}, "not one of this server"),
    ):
        refused = session.post(url, data={**form, "csrf_token": form_token(page)}, timeout=10)
        assert refused.status_code == 400 and words in refused.text, (form, refused.text[-2000:])
    assert tokens_made(server) == before
    made = session.post(
        url, data={"name": "crm", "scope": "usage", "product_id": "p-A", "csrf_token": form_token(page)}, timeout=10
    )
    bearer = re.search(r'<code id="new-token">([^<]+)</code>', made.text).group(1)
    ours, theirs = instance(server, "ON_DEMAND", product="p-A"), instance(server, "ON_DEMAND", product="p-B")
    assert usage(server, bearer, ours)[0] == 201
    assert usage(server, bearer, theirs)[0] == 403 and entitlement(server, bearer, ours)[0] == 403
    listed = session.get(url, timeout=10).text
    row = " | ".join(table_row(listed, "crm"))
    assert "recording usage" in row and "p-A" in row and "reading entitlements" not in row
    chinese = session.get(url + "?lang=zh", timeout=10).text
    assert "记录使用量" in chinese and "产品" in chinese


def test_the_page_shows_a_token_made_before_scopes_as_covering_everything(server):
    bearer = "isvapp_" + uuid.uuid4().hex
    from isvapp.koo.signing import secret_digest

    with server.db.begin() as connection:
        connection.execute(
            insert(ApiToken).values(name="legacy-token", digest=secret_digest(bearer), hint=bearer[:11], created_at=NOW)
        )
    session, _ = page_session(server)
    listed = session.get(server.url + "/admin/api-tokens", timeout=10).text
    row = " | ".join(table_row(listed, "legacy-token"))
    assert "reading entitlements, recording usage" in row and "any product" in row
