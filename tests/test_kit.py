"""Kit sync: tenants, apps (RSA clientSecret), users and departments, on the G2 and G1 paths."""

import base64
import json
import os
import stat

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from isvapp.koo import codes
from isvapp.storage import vault
from isvapp.storage.models import Callback, Department, Event, KitApp, KitState, KitUser, SignedRequest, Tenant

from .helpers import SCOPE, TENANT, auth, users
from .helpers import kit_ok as ok

# --- tenantSync --------------------------------------------------------------------------------


@pytest.mark.parametrize("send", ["g2", "g1-body-hmac", "g1-sorted-fields"])
def test_tenant_add_repeat_modify_delete_repeat(market, send):
    def sync(body):
        if send == "g2":
            return market.kit("tenantSync", body)
        return market.kit_g1("tenantSync", body, formula=send[3:])

    ok(sync(TENANT))
    ok(sync(TENANT))
    assert market.count(Tenant) == 1
    ok(sync({**TENANT, "name": "renamed", "flag": 2}))
    assert market.rows(Tenant)[0].name == "renamed"
    delete = {k: TENANT[k] for k in ("instanceId", "tenantId", "testFlag")} | {"flag": 0}
    ok(sync(delete))
    ok(sync(delete))
    [tenant] = market.rows(Tenant)
    assert tenant.state == KitState.DELETED
    if send != "g2":
        notes = {row.note for row in market.rows(Callback)}
        assert notes == {f"authToken formula: {send[3:]}"}


def test_delete_of_an_unknown_tenant_and_instance_succeeds(market):
    ok(market.kit("tenantSync", {"instanceId": "never-created", "tenantId": "t-x", "flag": 0, "testFlag": 0}))
    assert market.count(Tenant) == 0


# --- applicationSync ---------------------------------------------------------------------------------


def rsa_encrypt(public_key, text, digest=hashes.SHA256):
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=digest()), algorithm=digest(), label=None)
    return base64.b64encode(public_key.encrypt(text.encode(), oaep)).decode()


def app_body(secret, **extra):
    return {
        **SCOPE,
        "appId": "app-1",
        "clientId": "client-1",
        "clientSecret": secret,
        "flag": 1,
        "testFlag": 0,
        **extra,
    }


@pytest.mark.parametrize("digest", [hashes.SHA256, hashes.SHA1])
def test_client_secret_is_decrypted_and_sealed_never_logged(market, app, public_key, digest):
    ciphertext = rsa_encrypt(public_key, "s3cret-value", digest)
    ok(market.kit("applicationSync", app_body(ciphertext)))
    ok(market.kit("applicationSync", app_body(ciphertext)))
    [row] = market.rows(KitApp)
    assert vault.unseal("test-secret", row.client_secret_sealed) == "s3cret-value"
    logged = " ".join(r.request + r.response for r in market.rows(Callback))
    assert "s3cret-value" not in logged and ciphertext not in logged


def test_undecryptable_secret_is_000101_and_changes_nothing(market, public_key):
    ok(market.kit("applicationSync", app_body(base64.b64encode(b"x" * 384).decode())), codes.APP_SECRET_ERROR)
    ok(market.kit("applicationSync", app_body("not base64!")), codes.APP_SECRET_ERROR)
    assert market.count(KitApp) == 0 and market.count(SignedRequest) == 0


def test_without_a_key_pair_the_secret_cannot_be_read(market):
    answer = ok(market.kit("applicationSync", app_body("AAAA")), codes.APP_SECRET_ERROR)
    assert "kit-keygen" in answer["resultMsg"]


def test_kit_keygen_writes_a_private_key_once(app, runner):
    first = runner.invoke(args=["kit-keygen"])
    path = app.config["KOO_KIT_RSA_PRIVATE_KEY"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = serialization.load_pem_public_key(first.stdout.encode())
    assert key.key_size == 3072
    again = runner.invoke(args=["kit-keygen"])
    assert again.stdout == first.stdout and "kept" in again.stderr
    replaced = runner.invoke(args=["kit-keygen", "--force"])
    assert replaced.stdout != first.stdout


def test_app_delete_needs_no_secret_and_repeats(market):
    body = {**SCOPE, "appId": "app-1", "flag": 0, "testFlag": 0}
    ok(market.kit("applicationSync", body))
    ok(market.kit("applicationSync", body))


# --- authSync ---------------------------------------------------------------------------------------


def test_users_add_repeat_modify_revoke_delete_repeat(market):
    ok(market.kit("authSync", auth(1, users("alice", "bob", "carol"))))
    ok(market.kit("authSync", auth(1, users("alice", "bob", "carol"))))
    assert market.count(KitUser) == 3
    ok(market.kit("authSync", auth(2, users("bob", role="admin", mobile="138"))))
    bob = market.rows(KitUser, KitUser.user_name == "bob")[0]
    assert bob.role == "admin" and bob.extra == {"mobile": "138"}
    ok(market.kit("authSync", auth(3, users("carol"))))
    assert market.rows(KitUser, KitUser.user_name == "carol")[0].state == KitState.REVOKED
    ok(market.kit("authSync", auth(0, users("alice", "zed"))))
    ok(market.kit("authSync", auth(0, users("alice"))))
    assert sorted(u.user_name for u in market.rows(KitUser)) == ["bob", "carol"]


def test_g1_user_list_is_a_json_string(market):
    ok(market.kit_g1("authSync", auth(1, json.dumps(users("dave", "erin"), ensure_ascii=False))))
    assert market.count(KitUser) == 2


@pytest.mark.parametrize(
    "user_list, words",
    [
        ([{"name": "no account"}], "userList: userList[0].userName: Missing data"),
        ("[not json", "userList: is not a JSON list"),
        (42, "must be a list"),
    ],
)
def test_bad_user_lists_change_nothing(market, user_list, words):
    answer = ok(market.kit("authSync", auth(1, user_list)), codes.INVALID_PARAM)
    assert words in answer["resultMsg"]
    assert market.count(KitUser) == 0 and market.count(Event) == 0


# --- departments ------------------------------------------------------------------------------------


def tree(market):
    return {d.org_code: (d.org_name, d.parent_code) for d in market.rows(Department)}


def org(flag, code, name=None, parent=None):
    return {**SCOPE, "orgCode": code, "orgName": name, "parentCode": parent, "flag": flag, "testFlag": 0}


def test_single_department_add_repeat_modify_delete_repeat(market):
    ok(market.kit("singleOrgSync", org(1, "d1", "产品部")))
    ok(market.kit("singleOrgSync", org(1, "d1", "产品部")))
    ok(market.kit("singleOrgSync", org(2, "d1", "Product", "root")))
    assert tree(market) == {"d1": ("Product", "root")}
    ok(market.kit("singleOrgSync", org(0, "d1")))
    ok(market.kit("singleOrgSync", org(0, "d1")))
    assert tree(market) == {}


def full(orgs):
    return {**SCOPE, "orgInfo": [{"orgCode": c, "name": n, "parentCode": p} for c, n, p in orgs], "testFlag": 0}


def test_full_sync_replaces_shrinks_grows_and_reparents(market):
    ok(market.kit("allOrgSync", full([("a", "A", None), ("b", "B", "a"), ("c", "C", "b")])))
    ok(market.kit("allOrgSync", full([("a", "A", None), ("b", "B", "a"), ("c", "C", "b")])))
    assert tree(market) == {"a": ("A", None), "b": ("B", "a"), "c": ("C", "b")}
    ok(market.kit("allOrgSync", full([("a", "A", None), ("c", "C2", "a")])))  # shrink, rename, reparent
    assert tree(market) == {"a": ("A", None), "c": ("C2", "a")}
    ok(market.kit("allOrgSync", full([("a", "A", None), ("c", "C2", "a"), ("d", "D", "c"), ("e", "E", "c")])))
    assert tree(market) == {"a": ("A", None), "c": ("C2", "a"), "d": ("D", "c"), "e": ("E", "c")}
    kinds = [e.payload for e in market.rows(Event, Event.kind == "departments_replaced")]
    assert kinds[1] == {"tenant_id": SCOPE["tenantId"], "total": 3, "added": 0, "changed": 0, "removed": 0}


def test_g1_full_sync_with_the_reference_example_string(market):
    body = {**SCOPE, "testFlag": 0, "orgInfo": '[{"orgCode":"00000001","name":"产品部","parentCode":"265789314"}]'}
    ok(market.kit_g1("allOrgSync", body))
    assert tree(market) == {"00000001": ("产品部", "265789314")}


@pytest.mark.parametrize(
    "orgs, stored, warning",
    [
        (
            [("a", "A", "c"), ("b", "B", "a"), ("c", "C", "b")],
            {"a": ("A", "c"), "b": ("B", "a"), "c": ("C", "b")},
            "cycle",
        ),
        ([("a", "A", "a")], {"a": ("A", "a")}, "cycle"),
        ([("a", "A", "x"), ("b", "B", "y")], {"a": ("A", "x"), "b": ("B", "y")}, "2 parentCodes outside the list"),
        ([("a", "A", None), ("a", "A2", None)], {"a": ("A2", None)}, "orgCode a repeated; the last one kept"),
        ([("a", None, None)], {"a": ("a", None)}, "name: missing"),
    ],
)
def test_odd_trees_are_stored_as_given_and_flagged(market, orgs, stored, warning):
    """allOrgSync is never refused for its tree's shape: the merchant gets the tree and a warning."""
    ok(market.kit("allOrgSync", full([("keep", "K", None)])))
    ok(market.kit("allOrgSync", full(orgs)))
    assert tree(market) == stored
    row = market.rows(Callback, Callback.activity == "allOrgSync")[-1]
    assert warning in row.warnings


# --- verification and bad input ------------------------------------------------------------------------


def test_refusals(market):
    ok(market.kit("tenantSync", TENANT, key="wrong"), codes.AUTH_FAILED)
    ok(market.kit("tenantSync", TENANT, timestamp=1), codes.INVALID_PARAM)
    ok(market.kit_g1("tenantSync", TENANT, key="wrong"), codes.AUTH_FAILED)
    ok(market.kit("noSuchSync", TENANT), codes.INVALID_PARAM)
    answer = ok(market.kit("tenantSync", {k: v for k, v in TENANT.items() if k != "tenantId"}), codes.INVALID_PARAM)
    assert "tenantId" in answer["resultMsg"]
    ok(market.kit("tenantSync", {**TENANT, "flag": 7}), codes.INVALID_PARAM)
    ok(
        market.send("POST", "/produce/produceAPI/v2/tenantSync", data=b"{", content_type="application/json"),
        codes.AUTH_FAILED,
    )
    ok(
        market.send(
            "POST",
            "/produce/produceAPI/tenantSync",
            data=b"{",
            content_type="application/json",
            headers={"authToken": "x"},
        ),
        codes.INVALID_PARAM,
    )
    assert market.count(Tenant) == 0


def test_unknown_kit_paths_get_a_kit_signed_envelope(market):
    ok(
        market.send("POST", "/produce/produceAPI/v9/x", data=b"{}", content_type="application/json"),
        codes.INVALID_PARAM,
    )


def test_replayed_nonce_is_refused(market):
    ok(market.kit("tenantSync", TENANT, nonce="n-1"))
    ok(market.kit("tenantSync", {**TENANT, "name": "other"}, nonce="n-1"), codes.AUTH_FAILED)
    assert market.rows(Tenant)[0].name == "huaiweitest"
