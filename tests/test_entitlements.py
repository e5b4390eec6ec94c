"""The entitlement API the merchant's product calls, and its tokens made on the pages."""

from datetime import datetime, timedelta

import pytest
from isvapp.extensions import db
from isvapp.storage.models import ApiToken, Instance, InstanceState, Tenant

from .helpers import make_token, token


@pytest.fixture
def rows(app):
    with app.app_context():
        db.session.add_all(
            [
                Instance(
                    instance_id="INST-E",
                    generation="G2",
                    order_id="CSE",
                    product_id="p-1",
                    sku_code="s-1",
                    charging_mode="PERIOD",
                    expire_time=datetime.utcnow() + timedelta(days=10),
                ),
                Tenant(instance_key="INST-E", tenant_id="T-E", tenant_code="ent", name="Ent Co"),
            ]
        )
        db.session.commit()


def ask(client, path, bearer):
    return client.get(path, headers={"Authorization": f"Bearer {bearer}"} if bearer else {})


def test_a_token_made_on_the_pages_reads_an_instances_and_a_tenants_entitlement(app, admin_client, rows):
    bearer = make_token(admin_client)
    api = app.test_client()  # the merchant's product: no session, only the token
    answer = ask(api, "/api/v1/entitlements/instances/INST-E", bearer)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    body = answer.get_json()
    assert body["live"] is True and body["reason"] is None
    assert body["instance"]["id"] == "INST-E" and body["instance"]["productId"] == "p-1"
    assert body["instance"]["chargingMode"] == "PERIOD" and body["instance"]["expireTime"].endswith("Z")
    tenant = ask(api, "/api/v1/entitlements/tenants/T-E", bearer).get_json()
    assert tenant["tenant"] == {"id": "T-E", "code": "ent", "name": "Ent Co"} and tenant["live"] is True
    with app.app_context():
        stored = db.session.query(ApiToken).one()
        assert stored.digest != bearer and bearer not in (stored.hint + stored.name) and stored.last_used_at
    assert bearer not in admin_client.get("/admin/api-tokens").get_data(as_text=True)  # shown once only


@pytest.mark.parametrize(
    "state, reason", [(InstanceState.FROZEN, "instance_frozen"), (InstanceState.RELEASED, "instance_released")]
)
def test_an_instance_that_is_not_live_says_why(app, admin_client, rows, state, reason):
    bearer = make_token(admin_client)
    with app.app_context():
        db.session.query(Instance).update({"state": state})
        db.session.commit()
    body = ask(app.test_client(), "/api/v1/entitlements/instances/INST-E", bearer).get_json()
    assert body["live"] is False and body["reason"] == reason


def test_unknown_ids_are_404_with_a_message(app, admin_client, rows):
    bearer = make_token(admin_client)
    api = app.test_client()
    for path in ("/api/v1/entitlements/instances/NOPE", "/api/v1/entitlements/tenants/NOPE"):
        answer = ask(api, path, bearer)
        assert answer.status_code == 404 and "NOPE" in answer.get_json()["message"]


@pytest.mark.parametrize("bearer", [None, "", "isvapp_not-a-token", "Basic abc", "x" * 300])
def test_without_a_valid_token_the_answer_is_401_and_says_what_to_send(app, rows, bearer):
    answer = ask(app.test_client(), "/api/v1/entitlements/instances/INST-E", bearer)
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in answer.get_json()["message"] and "INST-E" not in answer.get_data(as_text=True)


def test_a_revoked_token_stops_working_at_once(app, admin_client, rows):
    bearer = make_token(admin_client)
    api = app.test_client()
    assert ask(api, "/api/v1/entitlements/instances/INST-E", bearer).status_code == 200
    with app.app_context():
        token_id = db.session.query(ApiToken).one().id
    page = admin_client.get("/admin/api-tokens").get_data(as_text=True)
    admin_client.post("/admin/api-tokens", data={"revoke": str(token_id), "csrf_token": token(page)})
    assert ask(api, "/api/v1/entitlements/instances/INST-E", bearer).status_code == 401
    assert "revoked" in admin_client.get("/admin/api-tokens").get_data(as_text=True)


def test_tokens_are_made_only_by_a_logged_in_merchant_with_the_forms_token(app, client):
    assert client.post("/admin/api-tokens", data={"name": "x"}).status_code == 302  # to the login page
    with app.app_context():
        assert db.session.query(ApiToken).count() == 0
