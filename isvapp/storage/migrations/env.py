"""Alembic environment: run migrations on the app's own engine and metadata.

Logging is left to the app (no fileConfig: reconfiguring logging here would silence the
app's loggers when init-db runs inside a live process or a test).
"""

import logging

from alembic import context
from flask import current_app

config = context.config
log = logging.getLogger("isvapp.migrations")


def target_metadata():
    from isvapp.storage import models  # noqa: F401  (registers every table)

    return current_app.extensions["migrate"].db.metadata


def skip_empty_autogenerate(context, revision, directives):
    """`isvapp db migrate` with no schema change writes no empty revision."""
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        log.info("No changes in schema detected.")


def run_migrations_offline():
    """`isvapp db upgrade --sql`: print the SQL instead of running it (for a DBA to review)."""
    engine = current_app.extensions["migrate"].db.engine
    context.configure(
        url=engine.url.render_as_string(hide_password=False),
        target_metadata=target_metadata(),
        literal_binds=True,
        **current_app.extensions["migrate"].configure_args,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    conf_args = dict(current_app.extensions["migrate"].configure_args)
    conf_args.setdefault("process_revision_directives", skip_empty_autogenerate)
    with current_app.extensions["migrate"].db.engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata(), **conf_args)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
