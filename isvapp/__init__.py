"""isvapp: a KooGallery production interface for SaaS and License merchants."""

import logging
import os

from flask import Flask

from .config import (
    DEFAULTS,
    KIT_RSA_KEY_FILENAME,
    LICENSE_KEY_FILENAME,
    LOGIN_KEY_FILENAME,
    default_database_uri,
    load_settings,
    login_settings,
    operation_settings,
    secret_key_problem,
)


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
    """Build the app: defaults, then instance/config.py, then ISVAPP_* environment (or test_config)."""
    app = Flask(__name__, instance_relative_config=True, instance_path=instance_folder(test_config))
    app.config.from_mapping(DEFAULTS)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env("ISVAPP")
    else:
        app.config.from_mapping(test_config)
    register_operations(app)
    os.makedirs(app.instance_path, exist_ok=True)
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        app.config["SQLALCHEMY_DATABASE_URI"] = default_database_uri(app.instance_path)
    for name, filename in (
        ("LICENSE_SIGNING_KEY", LICENSE_KEY_FILENAME),
        ("KOO_KIT_RSA_PRIVATE_KEY", KIT_RSA_KEY_FILENAME),
        ("LOGIN_SIGNING_KEY", LOGIN_KEY_FILENAME),
    ):
        if not app.config[name]:
            app.config[name] = os.path.join(app.instance_path, filename)
    problem = secret_key_problem(app.config["SECRET_KEY"]) if test_config is None else None
    if problem:  # wsgi.py refuses to serve with it; commands (init-config first of all) still run
        logging.getLogger("isvapp").warning(problem)
    app.extensions["isvapp"] = load_settings(app.config)
    app.extensions["isvapp_login"] = login_settings(app.config)

    register_extensions(app)
    register_blueprints(app)
    register_commands(app)
    return app


def register_operations(app):
    """Logs, metrics and error reports (README, "Operating it"): first, so that what follows logs
    in the format asked for."""
    from . import errorreports, logs, metrics
    from .domain.callbacklog import is_marketplace_path

    ops = app.extensions["isvapp_ops"] = operation_settings(app.config)
    if ops.log_format == "json":
        logs.use_json(os.environ.get("ISVAPP_LOG_LEVEL", "info"))
    metrics.enable(ops.metrics_enabled)
    errorreports.init_app(app, is_marketplace_path)


def register_extensions(app):
    from .domain import callbacklog
    from .storage import db

    db.init_app(app)
    callbacklog.init_app(app)


def register_blueprints(app):
    from . import health, login, monitoring, produce, productapi
    from .dashboard import views as dashboard
    from .productapi import relay

    app.register_blueprint(produce.bp)
    app.register_blueprint(login.bp)
    app.register_blueprint(productapi.bp)
    app.register_blueprint(relay.bp)
    app.register_blueprint(health.bp)
    monitoring.init_app(app)
    dashboard.init_app(app)
    produce.register_error_answers(app)
    hops = int(app.config["PROXY_FIX_HOPS"] or 0)
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def register_commands(app):
    from . import cli
    from .background import failures, jobs, maintenance, notices, provisioning, uploads, usage  # noqa: F401
    from .domain import kit, licensecodes, licenses, orderdetails  # noqa: F401
    from .market import fake as fakemarket
    from .market import simulator

    cli.init_app(app)
    fakemarket.init_app(app)
    from .market import fakeidp

    fakeidp.init_app(app)  # noqa: E702  `flask fake-idp`, the 联营 login's IdP
    jobs.init_app(app)
    kit.init_app(app)
    licenses.init_app(app)
    licensecodes.init_app(app)
    simulator.init_app(app)
    usage.init_app(app)
    maintenance.init_app(app)
    from .background import alerts

    alerts.init_app(app)  # noqa: E702  the alert job handler and `flask alert-test`
