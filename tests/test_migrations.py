"""Schema migrations: they rebuild exactly the models' schema, and upgrading keeps every row.

Runs on SQLite and, in the PostgreSQL run, on PostgreSQL. When the first test fails after a
model change, write the migration: scripts/new-migration.sh "what changed".
"""

import subprocess
import sys
import uuid

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from isvapp.extensions import db, migrate
from isvapp.storage.models import Instance
from isvapp.storage.schema import BASELINE, MIGRATIONS, _migration_lock, init_db
from sqlalchemy import create_engine, inspect, make_url, text
from sqlalchemy.pool import NullPool

from .helpers import ON_POSTGRES, current_revision, head_revision, schema_differences
from .live import ROOT, LiveServer
from .tiers import live_fixture


def test_migrations_build_exactly_the_models_schema(app):
    with app.app_context():
        assert current_revision() == head_revision(app)
        differences = schema_differences()
    assert differences == [], (
        'isvapp/storage/models.py and isvapp/storage/migrations disagree: run scripts/new-migration.sh "what changed", '
        f"read the new file, and commit it. Differences: {differences}"
    )


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
        # Core, with the columns the baseline has (a later column, such as key_fingerprint, is not there yet).
        db.session.execute(Instance.__table__.insert().values(instance_id="kept", generation="G2", order_id="o-1"))
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


# --- several hosts running init-db at once (every host's systemd ExecStartPre) -------------------

RACE_ROUNDS = 4


@live_fixture
def fresh_host(tmp_path, database_uri):
    """Makes a host on an empty database of its own, each call: a new SQLite file (in its own
    instance folder), or on PostgreSQL a new schema in this test's database (the `app` fixture's,
    in its public schema), dropped with that database after the test."""
    hosts = []

    def make():
        folder = tmp_path / f"host{len(hosts)}"
        folder.mkdir()
        env = {}
        if ON_POSTGRES:
            schema = f"t_{uuid.uuid4().hex[:16]}"
            engine = create_engine(database_uri, poolclass=NullPool, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            engine.dispose()
            uri = make_url(database_uri).update_query_dict({"options": f"-csearch_path={schema}"})
            env["ISVAPP_SQLALCHEMY_DATABASE_URI"] = uri.render_as_string(hide_password=False)
        hosts.append(LiveServer(folder, env=env))
        return hosts[-1]

    return make


def race_init_db(host, runners=2):
    """`flask --app isvapp init-db` in ``runners`` processes started back to back on one database,
    as hosts booting together run it; their exit statuses and outputs."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "isvapp", "init-db"],
            cwd=ROOT,
            env=host.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(runners)
    ]
    results = []
    for proc in procs:
        try:
            output, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate(timeout=10)
            output += "\n[killed: still running after 90 s]"
        results.append((proc.returncode, output))
    return results


def assert_at_head(host):
    engine = host.engine()
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert context.get_current_revision() == ScriptDirectory(MIGRATIONS).get_current_head()
            assert compare_metadata(context, db.metadata) == []
    finally:
        engine.dispose()


def assert_all_succeeded(results):
    failed = [output for status, output in results if status != 0]
    assert not failed, "init-db failed while another ran:\n" + "\n---\n".join(failed)
    head = ScriptDirectory(MIGRATIONS).get_current_head()
    assert all(f"schema revision {head}" in output for _, output in results), results


def test_init_db_run_by_two_hosts_at_once_on_a_fresh_database_succeeds_on_both(fresh_host):
    for _ in range(RACE_ROUNDS):
        host = fresh_host()
        assert_all_succeeded(race_init_db(host))
        assert_at_head(host)


def test_init_db_run_by_two_hosts_at_once_upgrades_an_old_database_once_and_keeps_its_rows(fresh_host):
    for round_ in range(RACE_ROUNDS):
        host = fresh_host()
        host.flask("db", "upgrade", BASELINE)  # a database the first release made, with rows in it
        engine = host.engine()
        try:
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO instances (instance_id, generation, product_type, state, details_state,"
                        " test_flag, trial, order_id, created_at, updated_at) VALUES (:id, 'G2', 'saas',"
                        " 'active', 'none', :no, :no, 'o-1', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                    ),
                    {"id": f"kept-{round_}", "no": False},
                )
            assert_all_succeeded(race_init_db(host))
            assert_at_head(host)
            with engine.connect() as conn:
                assert conn.execute(text("SELECT instance_id FROM instances")).scalars().all() == [f"kept-{round_}"]
        finally:
            engine.dispose()


def test_init_db_waits_only_for_an_init_db_on_its_own_database(app, fresh_host):
    # On PostgreSQL the other host is another schema of the same database: the lock is per schema.
    other = fresh_host()
    with app.app_context(), _migration_lock():
        other.flask("init-db")  # would wait, and time out after 60 s, on a lock shared by all
    assert_at_head(other)
