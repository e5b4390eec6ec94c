"""Schema migrations: they rebuild exactly the models' schema, and upgrading keeps every row.

Runs on SQLite and, in the PostgreSQL run, on PostgreSQL. When the first test fails after a
model change, write the migration: scripts/new-migration.sh "what changed".
"""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from isvapp.db import BASELINE, MIGRATIONS, init_db
from isvapp.extensions import db, migrate
from isvapp.models import Instance



def schema_differences():
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def head_revision(app):
    return ScriptDirectory(MIGRATIONS).get_current_head()


def current_revision():
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_migrations_build_exactly_the_models_schema(app):
    with app.app_context():
        assert current_revision() == head_revision(app)
        differences = schema_differences()
    assert differences == [], (
        "isvapp/models.py and isvapp/migrations disagree: run scripts/new-migration.sh \"what changed\", "
        f"read the new file, and commit it. Differences: {differences}")


def test_migrations_go_down_to_nothing_and_back_up(app):
    with app.app_context():
        downgrade(directory=MIGRATIONS, revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade(directory=MIGRATIONS)
        assert schema_differences() == []


def test_init_db_adopts_a_database_made_before_migrations_and_keeps_its_rows(app, market):
    # A database as the first release's create_all left it: the baseline's tables, no version.
    with app.app_context():
        downgrade(directory=MIGRATIONS, revision="base")
        upgrade(directory=MIGRATIONS, revision=BASELINE)
        db.session.execute(text("DROP TABLE alembic_version"))
        db.session.add(Instance(instance_id="kept", generation="G2", order_id="o-1"))
        db.session.commit()
    assert market.count(Instance) == 1
    with app.app_context():
        assert init_db() == head_revision(app)
        assert schema_differences() == []
    assert market.count(Instance) == 1


def test_init_db_command_reports_the_revision_and_flask_db_is_there(app, runner):
    assert f"schema revision {head_revision(app)}" in runner.invoke(args=["init-db"]).output
    assert runner.invoke(args=["db", "check"]).exit_code == 0  # Flask-Migrate's commands work
    assert migrate.directory == MIGRATIONS
