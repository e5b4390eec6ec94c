"""The merchant's pages: every order, instance, license, tenant and callback, behind a login."""

from . import i18n, views

# Flask-Babel is set up with the pages, on each app that registers them (views.init_app).
views.bp.record_once(lambda state: i18n.init_app(state.app))
