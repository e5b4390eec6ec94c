"""isvapp: a KooGallery production interface for SaaS and License merchants."""

import os

from flask import Flask

from . import settings
from .config import configure


def instance_folder(test_config=None):
    """Where the app's instance folder is: INSTANCE_PATH in a test's config, ISVAPP_INSTANCE_PATH,
    else Flask's own default for this package (gunicorn.conf.py asks too, before any app exists).

    ISVAPP_INSTANCE_PATH matters for a non-editable install, which would otherwise put the folder
    under the virtual environment.
    """
    path = (test_config or {}).get("INSTANCE_PATH") or os.environ.get("ISVAPP_INSTANCE_PATH")
    if path:
        return os.path.abspath(path)
    return Flask(__name__, instance_relative_config=True).instance_path


def create_app(test_config=None):
    """Build the app: defaults, then instance/config.py, then ISVAPP_* environment (or test_config).

    A weak SECRET_KEY is not warned about here: that warned on every command, init-config too,
    just before it wrote the first key. gunicorn (wsgi.py) refuses to serve with one, the worker
    warns as it starts, the go-live page shows it.
    """
    app = Flask(__name__, instance_relative_config=True, instance_path=instance_folder(test_config))
    named: set[str] = set()
    configure(app.config, app.instance_path, test_config, named=named)
    settings.init_app(app)
    register_operations(app)
    environment = [name for name in os.environ if name.startswith("ISVAPP_")] if test_config is None else []
    settings.report_unknown(app, named, environment)
    os.makedirs(app.instance_path, exist_ok=True)

    register_extensions(app)
    register_jobs(app)
    register_blueprints(app)
    register_commands(app)
    return app


def register_operations(app):
    """Logs, metrics and error reports (README, "Operating it"): first, so that what follows logs
    in the format asked for."""
    from . import errorreports, logs, metrics
    from .domain.callbacklog import is_marketplace_path

    ops = settings.settings_of(app).ops
    if ops.log_format == "json":
        logs.use_json(os.environ.get("ISVAPP_LOG_LEVEL", "info"))
    metrics.enable(ops.metrics_enabled)
    errorreports.init_app(app, is_marketplace_path)


def register_extensions(app):
    from . import inbound
    from .domain import callbacklog
    from .storage import db

    db.init_app(app)
    callbacklog.init_app(app)
    inbound.init_app(app)


def register_blueprints(app):
    from . import dashboard, health, login, monitoring, produce, productapi
    from .productapi import relay

    app.register_blueprint(produce.bp)
    app.register_blueprint(login.bp)
    app.register_blueprint(productapi.bp)
    app.register_blueprint(relay.bp)
    app.register_blueprint(health.bp)
    monitoring.init_app(app)
    dashboard.init_app(app)
    produce.register_error_answers(app)
    register_security_headers(app)
    hops = settings.settings_of(app).ops.proxy_fix_hops
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


# For an HTML answer no blueprint dressed (a 404 or 405 raised by routing, an error page): it has
# no script, style or image, and nothing may frame it.
ERROR_PAGE_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


def register_security_headers(app):
    """The headers a scanner looks for on every answer, where a blueprint set none (its own win):
    the marketplace's answers, a 404, an error page. A 404 or 405 raised by routing reaches no
    blueprint's after_request, so this one is the app's."""

    @app.after_request
    def _security_headers(response):
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        if response.mimetype == "text/html":
            headers.setdefault("Content-Security-Policy", ERROR_PAGE_CSP)
            headers.setdefault("X-Frame-Options", "DENY")
            headers.setdefault("Referrer-Policy", "no-referrer")
        return response


def register_jobs(app):
    """What runs in the background, on the app (background/registry.py): every module that owns a
    job kind, a periodic task, a watcher of failing or dead jobs or an alert written when read is
    in this one list, and registers its own through ``register_jobs(registry)``. The worker runs
    the periodic tasks in the list's order. The order-details fetch and the relay's usage report
    are the domain's (they change its state), which background may not import: hence the list is
    here, above both. A new job kind: docs/architecture.md, "Adding a job kind"."""
    from .background import alerts, failures, maintenance, notices, provisioning, uploads, usage
    from .background.registry import KEY, JobRegistry
    from .domain import licensecodes, orderdetails

    registry = app.extensions[KEY] = JobRegistry()
    for module in (alerts, usage, maintenance, notices, failures, provisioning, uploads, orderdetails, licensecodes):
        module.register_jobs(registry)


def register_commands(app):
    from . import backups, cli
    from .background import alerts, jobs, maintenance, usage, worker
    from .domain import kit, licensecodes, licenses

    cli.init_app(app)
    backups.init_app(app)
    jobs.init_app(app)
    worker.init_app(app)
    kit.init_app(app)
    licenses.init_app(app)
    licensecodes.init_app(app)
    usage.init_app(app)
    maintenance.init_app(app)
    alerts.init_app(app)  # `isvapp alert-test`
