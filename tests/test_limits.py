"""A schema never accepts what the database refuses: every cap checked against the column that stores it.

An identifier the schema lets through but the column cannot hold would answer 000005 on every
retry, forever (PostgreSQL enforces VARCHAR lengths; SQLite overflows on integers past 64 bits).
Free text is cut by the schema to exactly what its column holds.
"""

import pytest
from isvapp.koo import schemas
from isvapp.storage.models import Department, Instance, KitApp, KitUser, License, Tenant
from sqlalchemy import Integer, String

pytestmark = pytest.mark.any_database  # the schemas' caps against the models' columns, read from the models

# (schema, field) -> the column that stores it.
STORED = [
    (schemas.G2NewInstance, "orderId", Instance.order_id),
    (schemas.G2NewInstance, "orderLineId", Instance.order_line_id),
    (schemas.G2NewInstance, "businessId", Instance.instance_id),
    (schemas.G2RefreshInstance, "productId", Instance.product_id),
    (schemas.G1Order, "customerId", Instance.customer_id),
    (schemas.G1Order, "customerName", Instance.customer_name),
    (schemas.G1Order, "userId", Instance.user_id),
    (schemas.G1Order, "userName", Instance.user_name),
    (schemas.G1Order, "orderId", Instance.order_id),
    (schemas.G1Order, "orderLineId", Instance.order_line_id),
    (schemas.G1Order, "productId", Instance.product_id),
    (schemas.G1Order, "skuCode", Instance.sku_code),
    (schemas.G1Order, "chargingMode", Instance.charging_mode),
    (schemas.G1Order, "periodType", Instance.period_type),
    (schemas.G1Order, "periodNumber", Instance.period_number),
    (schemas.G1Order, "businessId", Instance.instance_id),
    (schemas.G1Upgrade, "productId", Instance.product_id),
    (schemas.G1Upgrade, "skuCode", Instance.sku_code),
    (schemas.GetLicenseAsync, "eventId", License.event_id),
    (schemas.GetLicenseAsync, "deviceFingerprint", License.fingerprint),
    (schemas.TenantSync, "instanceId", Tenant.instance_key),
    (schemas.TenantSync, "tenantId", Tenant.tenant_id),
    (schemas.TenantSync, "tenantCode", Tenant.tenant_code),
    (schemas.TenantSync, "name", Tenant.name),
    (schemas.TenantSync, "domainName", Tenant.domain_name),
    (schemas.TenantSync, "orderId", Tenant.order_id),
    (schemas.ApplicationSync, "appId", KitApp.app_id),
    (schemas.ApplicationSync, "name", KitApp.name),
    (schemas.ApplicationSync, "clientId", KitApp.client_id),
    (schemas.AuthSync, "appId", KitUser.app_id),
    (schemas.SingleOrgSync, "orgCode", Department.org_code),
    (schemas.SingleOrgSync, "orgName", Department.org_name),
    (schemas.SingleOrgSync, "parentCode", Department.parent_code),
]
# Fields of list items, checked by hand in the schemas (their caps are module constants).
ITEMS = [
    (schemas.MAX_ID, Department.org_code),
    (schemas.MAX_ID, Department.parent_code),
    (128, Department.org_name),
    (255, KitUser.user_name),
    (schemas.USER_FIELDS["name"], KitUser.name),
    (schemas.USER_FIELDS["position"], KitUser.position),
    (schemas.USER_FIELDS["employeeType"], KitUser.employee_type),
    (schemas.USER_IDS["orgCode"], KitUser.org_code),
    (schemas.USER_IDS["employeeCode"], KitUser.employee_code),
]


@pytest.mark.parametrize("schema, name, column", STORED, ids=[f"{s.__name__}.{n}" for s, n, _ in STORED])
def test_every_stored_field_fits_its_column(schema, name, column):
    field = schema._declared_fields[name]
    column_type = column.property.columns[0].type
    if isinstance(column_type, Integer):
        assert isinstance(field, schemas.Int) and schemas.INT32 < 2**31  # 32-bit, what every database holds
        return
    assert isinstance(column_type, String) and column_type.length, f"{column} has no length"
    assert field.max_len is not None, f"{schema.__name__}.{name} has no cap but {column} holds {column_type.length}"
    assert field.max_len <= column_type.length
    if field.cut:
        assert field.max_len == column_type.length  # free text is cut to exactly what is stored


@pytest.mark.parametrize("cap, column", ITEMS, ids=[str(c) for _, c in ITEMS])
def test_list_item_caps_fit_their_columns(cap, column):
    assert cap <= column.property.columns[0].type.length


def test_a_20_digit_period_number_is_not_stored():
    data = schemas.G1Order().load(
        {"activity": "newInstance", "businessId": "b", "orderId": "o", "periodNumber": "9" * 20}
    )
    assert data["periodNumber"] is None
