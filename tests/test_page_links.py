"""Links that keep the current filters (Export CSV, next page) carry only the filters the lists
read: url_for would take `_method`, `_scheme`, `_external` or `_anchor` from the query string as
its own arguments."""

import re

import pytest

from .helpers import new_order


@pytest.mark.parametrize("path", ["/admin/instances", "/admin/licenses", "/admin/callbacks"])
@pytest.mark.parametrize(
    "attack",
    [
        "_method=POST",
        "_scheme=javascript&_external=1",
        "_external=1",
        "_anchor=x%22onmouseover%3D1",
        "endpoint=dashboard.logout",
    ],
)
def test_url_for_arguments_in_the_query_string_are_ignored(browser, market, path, attack):
    for n in range(55):
        market.g2(new_order(order=f"LINK{n:03d}", business=f"link-{n:03d}", test_flag="0"))
    response = browser.get(f"{path}?state=ACTIVE&q=&{attack}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    [export] = re.findall(r'<a class="button" href="([^"]*)" download>', page)
    assert export.startswith(path + ".csv") and "_" not in export.split("?", 1)[-1].replace("&amp;", "&")
    assert "state=ACTIVE" in export
    for link in re.findall(r'href="([^"]*page=[^"]*)"', page):
        assert link.startswith(path + "?") and "_method" not in link and "_external" not in link
