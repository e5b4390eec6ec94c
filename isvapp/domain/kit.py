"""Joint-operation (Kit) sync: tenants, apps, authorised users and the department tree.

Idempotency follows the reference's rules (§2.B): per (instance, tenant, app + userName | orgCode),
a repeated add changes nothing new, a repeated delete succeeds, and a delete never requires the
instance to exist. Large syncs use set-based statements (executemany upserts, IN-list deletes),
never one ORM object per row, so 50,000 departments fit the 5 s budget with flat memory.
"""

import os

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import bindparam, delete, select, update

from ..extensions import db
from ..koo import codes, oddities
from ..koo.codes import KooError
from ..koo.envelope import envelope
from ..koo.fieldcrypto import rsa_oaep_decrypt
from ..privatefiles import write_private_file
from ..settings import settings_of
from ..storage import vault
from ..storage.models import Department, KitApp, KitState, KitUser, Tenant, utcnow
from ..storage.statements import batches, upsert_rows
from . import lifecycle

DELETE, ADD, MODIFY, REVOKE = 0, 1, 2, 3
RSA_BITS = 3072
TENANT_FIELDS = {"tenantCode": "tenant_code", "name": "name", "domainName": "domain_name"}


def _keys(data):
    return {"instance_key": data.get("instanceId") or "", "tenant_id": data["tenantId"]}


def _another_keys_tenant(settings, data):
    """Another Kit key's tenant is, to this key, a tenant that does not exist (docs/protocol.md,
    "Key ownership"): a delete or a debugging call is answered success and changes nothing, any
    other sync 000003. None when the tenant is this key's, nobody's yet, or shared by setting.

    A tenant belongs to the Kit key that created it (KOO_KIT_ACCESS_KEY keys are not the basic
    keys, so the instance's key cannot tell); its apps, users and departments go with it."""
    asking = lifecycle.owner(settings, kit=True)
    if asking.shared:
        return None
    keys = _keys(data)
    row = db.session.execute(
        select(Tenant.key_fingerprint).where(
            Tenant.instance_key == keys["instance_key"], Tenant.tenant_id == keys["tenant_id"]
        )
    ).first()
    if row is None or asking.may_use(row[0]):
        return None
    if data.get("flag") == DELETE or data["testFlag"]:
        oddities.note(
            "tenant %(tenant)s belongs to another Kit key: answered success, nothing changed", tenant=data["tenantId"]
        )
        return envelope()
    raise KooError(codes.INSTANCE_NOT_FOUND, f"tenant {data['tenantId']} does not exist")


def _event(kind, data, **payload):
    lifecycle.record_event(
        kind, data.get("instanceId"), data.get("orderId"), {"tenant_id": data["tenantId"], **payload}
    )


# --- tenantSync ----------------------------------------------------------------------------------


def tenant_sync(settings, data):
    """Add (1) writes every field; modify (2) only the fields it carries; delete (0) marks the tenant."""
    refused = _another_keys_tenant(settings, data)
    if refused is not None:
        return refused
    keys, now = _keys(data), utcnow()
    if data["flag"] == DELETE:
        db.session.execute(
            update(Tenant)
            .where(*(getattr(Tenant, k) == v for k, v in keys.items()))
            .values(state=KitState.DELETED, updated_at=now)
        )
    else:
        carried = {
            column: data.get(field) for field, column in TENANT_FIELDS.items() if data["flag"] == ADD or field in data
        }
        if data.get("orderId") or data["flag"] == ADD:
            carried["order_id"] = data.get("orderId") or None
        if (
            data["flag"] == MODIFY
            and not keys["instance_key"]
            and _modify_every_instance(settings, data["tenantId"], carried, now)
        ):
            _event("tenant_synced", data)
            return envelope()
        upsert_rows(
            Tenant,
            [
                dict(
                    keys,
                    **carried,
                    state=KitState.ACTIVE,
                    test_flag=data["testFlag"],
                    created_at=now,
                    updated_at=now,
                    key_fingerprint=lifecycle.owner(settings, kit=True).fingerprint,
                )
            ],
            keys=list(keys),
            update=[*carried, "state", "test_flag", "updated_at"],
        )
    _event("tenant_deleted" if data["flag"] == DELETE else "tenant_synced", data)
    return envelope()


def _modify_every_instance(settings, tenant_id, carried, now):
    """A modify that names no instance changes the tenant under whichever instances it has (of
    this Kit key's), rather than starting a second, partial row; False when there is no such tenant yet."""
    asking = lifecycle.owner(settings, kit=True)
    owned = [] if asking.shared else [Tenant.key_fingerprint.is_(None) | (Tenant.key_fingerprint == asking.fingerprint)]
    changed = db.session.execute(
        update(Tenant).where(Tenant.tenant_id == tenant_id, *owned).values(**carried, updated_at=now)
    ).rowcount  # type: ignore[attr-defined]  # CursorResult
    if changed:
        oddities.note("tenantSync modify without instanceId: applied to every instance of the tenant")
    return changed > 0


# --- applicationSync ---------------------------------------------------------------------------------

_rsa_keys = {}


def rsa_private_key(path):
    if not path or not os.path.exists(path):
        raise KooError(
            codes.APP_SECRET_ERROR,
            "no RSA private key is configured to decrypt clientSecret "
            "(KOO_KIT_RSA_PRIVATE_KEY; `.venv/bin/isvapp kit-keygen` makes one)",
        )
    stamp = os.stat(path).st_mtime_ns
    cached = _rsa_keys.get(path)
    if cached is None or cached[0] != stamp:
        with open(path, "rb") as f:
            cached = _rsa_keys[path] = (stamp, serialization.load_pem_private_key(f.read(), password=None))
    return cached[1]


def application_sync(settings, data, encrypted_secret=True):
    """G2 sends clientSecret RSA-OAEP-encrypted (§1.2 item 7); it is stored sealed, never shown."""
    refused = _another_keys_tenant(settings, data)
    if refused is not None:
        return refused
    keys, now = dict(_keys(data), app_id=data["appId"]), utcnow()
    if data["flag"] == DELETE:
        db.session.execute(
            update(KitApp)
            .where(*(getattr(KitApp, k) == v for k, v in keys.items()))
            .values(state=KitState.DELETED, updated_at=now)
        )
    else:
        secret = data.get("clientSecret")
        if encrypted_secret and secret:
            secret = rsa_oaep_decrypt(rsa_private_key(settings.kit_rsa_private_key), secret)
        upsert_rows(
            KitApp,
            [
                dict(
                    keys,
                    name=data.get("name"),
                    client_id=data.get("clientId"),
                    client_secret_sealed=vault.seal(settings.secret_key, secret) if secret else None,
                    order_id=data.get("orderId") or None,
                    state=KitState.ACTIVE,
                    test_flag=data["testFlag"],
                    created_at=now,
                    updated_at=now,
                )
            ],
            keys=list(keys),
            update=["name", "client_id", "client_secret_sealed", "order_id", "state", "test_flag", "updated_at"],
        )
    _event("app_deleted" if data["flag"] == DELETE else "app_synced", data, app_id=data["appId"])
    return envelope()


# --- authSync --------------------------------------------------------------------------------------

USER_COLUMNS = {
    "name": "name",
    "position": "position",
    "orgCode": "org_code",
    "role": "role",
    "enable": "enable",
    "employeeCode": "employee_code",
    "employeeType": "employee_type",
    "extra": "extra",
}


def auth_sync(settings, data):
    refused = _another_keys_tenant(settings, data)
    if refused is not None:
        return refused
    keys, now = dict(_keys(data), app_id=data["appId"]), utcnow()
    users, flag = data["userList"], data["flag"]
    where = [getattr(KitUser, k) == v for k, v in keys.items()]
    names = [u["userName"] for u in users]
    if flag in (ADD, MODIFY):
        upsert_rows(
            KitUser,
            [
                dict(
                    keys,
                    user_name=u["userName"],
                    state=KitState.ACTIVE,
                    updated_at=now,
                    **{column: u[field] for field, column in USER_COLUMNS.items()},
                )
                for u in users
            ],
            keys=["instance_key", "tenant_id", "app_id", "user_name"],
            update=[*USER_COLUMNS.values(), "state", "updated_at"],
        )
    elif flag == DELETE:
        for batch in batches(names):
            db.session.execute(delete(KitUser).where(*where, KitUser.user_name.in_(batch)))
    else:  # REVOKE: kept, marked, so the merchant's product can refuse the login
        for batch in batches(names):
            db.session.execute(
                update(KitUser)
                .where(*where, KitUser.user_name.in_(batch))
                .values(state=KitState.REVOKED, updated_at=now)
            )
    _event("users_synced", data, app_id=data["appId"], flag=flag, users=len(users))
    return envelope()


# --- singleOrgSync / allOrgSync ------------------------------------------------------------------------


def single_org_sync(settings, data):
    refused = _another_keys_tenant(settings, data)
    if refused is not None:
        return refused
    keys = dict(_keys(data), org_code=data["orgCode"])
    if data["flag"] == DELETE:
        db.session.execute(delete(Department).where(*(getattr(Department, k) == v for k, v in keys.items())))
    else:
        upsert_rows(
            Department,
            [
                dict(
                    keys,
                    org_name=data.get("orgName") or data["orgCode"],
                    parent_code=data.get("parentCode") or None,
                    updated_at=utcnow(),
                )
            ],
            keys=list(keys),
            update=["org_name", "parent_code", "updated_at"],
        )
    _event("department_synced", data, org_code=data["orgCode"], flag=data["flag"])
    return envelope()


def note_tree_oddities(orgs):
    """Flag a department list that is not a tree under one root; it is stored as given all the same.

    Huawei's own example has one parent outside the list (the enterprise root); several outside
    parents or a cycle are odd, but refusing the sync would leave the merchant with no tree at all.
    """
    outside = sorted({parent for _, parent in orgs.values() if parent and parent not in orgs})
    if len(outside) > 1:
        oddities.note(
            "orgInfo: %(count)s parentCodes outside the list (%(codes)s)",
            count=len(outside),
            codes=", ".join(outside[:3]),
        )
    state = {}  # code -> 1 visiting, 2 done
    for start in orgs:
        path, code = [], start
        while code in orgs and state.get(code) != 2:
            if state.get(code) == 1:
                oddities.note("orgInfo: parentCode cycle through %(code)s", code=code)
                break
            state[code] = 1
            path.append(code)
            code = orgs[code][1]
        for done in path:
            state[done] = 2


def all_org_sync(settings, data):
    """Replace the tenant's tree with the list, in this one transaction; a repeat writes nothing."""
    refused = _another_keys_tenant(settings, data)
    if refused is not None:
        return refused
    orgs = data["orgInfo"]
    note_tree_oddities(orgs)
    keys, now = _keys(data), utcnow()
    where = [getattr(Department, k) == v for k, v in keys.items()]
    existing = {
        code: (name, parent)
        for code, name, parent in db.session.execute(
            select(Department.org_code, Department.org_name, Department.parent_code).where(*where)
        )
    }
    gone = [code for code in existing if code not in orgs]
    added = [
        dict(keys, org_code=code, org_name=name, parent_code=parent, updated_at=now)
        for code, (name, parent) in orgs.items()
        if code not in existing
    ]
    changed = [
        {"k": code, "n": name, "p": parent}
        for code, (name, parent) in orgs.items()
        if code in existing and existing[code] != (name, parent)
    ]
    for batch in batches(gone):
        db.session.execute(delete(Department).where(*where, Department.org_code.in_(batch)))
    for batch in batches(added):
        db.session.execute(Department.__table__.insert(), batch)
    if changed:
        statement = (
            Department.__table__.update()
            .where(*where, Department.org_code == bindparam("k"))
            .values(org_name=bindparam("n"), parent_code=bindparam("p"), updated_at=now)
        )
        for batch in batches(changed):
            db.session.execute(statement, batch)
    _event("departments_replaced", data, total=len(orgs), added=len(added), changed=len(changed), removed=len(gone))
    return envelope()


# --- kit-keygen ----------------------------------------------------------------------------------------


def _write_private_key(path, pem):
    """Write ``pem`` to ``path`` (mode 0600, whole), never through a symlink (write_private_file:
    ``path`` itself must not be one; a key kept elsewhere through a link is the operator's to
    replace)."""
    try:
        write_private_file(path, pem, replace=True)
    except IsADirectoryError:
        raise click.ClickException(
            f"{path} is a symbolic link; not written through it. Remove it, or set "
            "KOO_KIT_RSA_PRIVATE_KEY to the file's real path."
        ) from None


@click.command("kit-keygen")
@click.option("--force", is_flag=True, help="Replace an existing key pair (apps synced before stop decrypting).")
@with_appcontext
def kit_keygen_command(force):
    """Make the RSA-3072 key pair for applicationSync and print the public key for the Seller Console."""
    path = settings_of(current_app).kit_rsa_private_key
    if os.path.exists(path) and not force:
        key = rsa_private_key(path)
        click.echo(f"{path} exists; kept (use --force to replace it). Its public key:", err=True)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private_key(path, pem)
        click.echo(f"Wrote {path} (mode 600). Paste this public key into the Seller Console:", err=True)
    click.echo(
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii"),
        nl=False,
    )


def init_app(app):
    app.cli.add_command(kit_keygen_command)
