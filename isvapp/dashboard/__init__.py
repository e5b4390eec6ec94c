"""The merchant's pages: every order, instance, license, tenant and callback, behind a login.
A blueprint (bp, here) whose routes are in views.py; the rest serves them:

    views.py      the pages' routes, thin views over filtered, paginated queries
    security.py   the admin's login, CSRF, the security headers
    i18n.py       the pages' language (Flask-Babel); display.py and labels.py how values read
    golive.py     the go-live checklist; diagnosis.py failures explained; charts.py the SVG charts
"""

from flask import Blueprint, redirect, url_for

from . import i18n, security

bp = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
# Flask-Babel is set up with the pages, on each app that registers them (init_app).
bp.record_once(lambda state: i18n.init_app(state.app))


def init_app(app):
    app.register_blueprint(bp)
    security.init_app(app)

    @app.get("/")
    def _home():
        return redirect(url_for("dashboard.overview"))


from . import views  # noqa: E402, F401  the routes, decorated on bp: imported once bp exists
