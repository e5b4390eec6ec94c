"""The marketplace's routes: each path and method to the view of its generation (g2, g1, license,
kit), with and without a trailing slash (the Seller Console keeps what the merchant typed)."""

from . import bp, g1, g2, kit, license

ROUTES = [  # (path, endpoint, view, method)
    ("/produce", "g2", g2.produce, "POST"),
    ("/produce", "g1", g1.produce, "GET"),
    ("/license", "license_2", license.license_2, "POST"),
    ("/license", "license_g1", license.license_g1, "GET"),
]
for path, endpoint, view, method in ROUTES:
    bp.add_url_rule(path, endpoint, view, methods=[method])
    bp.add_url_rule(path + "/", endpoint + "_slash", view, methods=[method])
for base in ("/produce", "/license"):
    for slash in ("", "/"):
        bp.add_url_rule(
            base + "/produceAPI/v2/<name>" + slash,
            f"kit_g2{base}{slash}".replace("/", "_"),
            kit.sync_g2,
            methods=["POST"],
        )
        bp.add_url_rule(
            base + "/produceAPI/<name>" + slash, f"kit_g1{base}{slash}".replace("/", "_"), kit.sync_g1, methods=["POST"]
        )
