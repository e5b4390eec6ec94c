"""`isvapp backup` and `isvapp restore`: everything a restore needs, in one archive, and a restore
that proves itself.

A database alone is not a backup: without SECRET_KEY its sealed passwords and client secrets
cannot be read, and without the key files the licenses it issued cannot be verified nor Kit's
secrets opened. The archive (isvapp/archive.py) holds them together:

    manifest.json            what follows, with each member's SHA-256; where the keys lived
    SECRET_KEY               the key in force, also when it came from ISVAPP_SECRET_KEY
    config.py                instance/config.py, when there is one
    keys/<SETTING>.pem       LICENSE_SIGNING_KEY, KOO_KIT_RSA_PRIVATE_KEY, LOGIN_SIGNING_KEY files
    database/isvapp.sqlite   SQLite's online backup, checked (PostgreSQL: pg_dump beside it)

A restore stages and checks every member before it writes anything, refuses to overwrite a
database holding data (or a key that differs) without --force, then proves the result on a
scratch copy of the restored database: the keys load, stored secrets unseal, and a newInstance
from the callback log, signed again, is answered with its stored answer byte for byte.
"""

import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from datetime import UTC, datetime
from urllib.parse import urlencode

import click
from cryptography.hazmat.primitives import serialization
from flask import Config, current_app
from flask.cli import with_appcontext
from sqlalchemy import make_url, select
from sqlalchemy.exc import SQLAlchemyError

from . import archive, create_app
from .background import status
from .background.maintenance import backup_sqlite
from .config import KEY_FILES, configure
from .extensions import db
from .koo.signing import canonical_payload, g1_signed_params, g2_signed_request, key_fingerprint, verify_body_sign
from .privatefiles import create_private, write_private_file
from .settings import load, settings_of
from .storage import vault
from .storage.models import Answer, Callback, Instance, InstanceState, KitApp
from .storage.schema import init_db

DATABASE_MEMBER = "database/isvapp.sqlite"
WORKER_RUNNING_S = 120  # a heartbeat this recent: a worker is still using the database


def _key_member(setting):
    return f"keys/{setting}.pem"


def _allowed(name):
    return name in (DATABASE_MEMBER, "SECRET_KEY", "config.py") or name in {_key_member(s) for s in KEY_FILES}


def public_fingerprint(pem):
    """How a private key is shown: a short hash of its public half, never the key."""
    key = serialization.load_pem_private_key(pem, password=None)
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    kind = type(key).__name__.removeprefix("_").removesuffix("PrivateKey")  # Ed25519, RSA, EllipticCurve
    return f"{kind} sha256:{hashlib.sha256(spki).hexdigest()[:16]}"


def _passphrase(passphrase_file, prompt, confirm):
    """The passphrase from its file (the first line), or asked for; None when neither is wanted."""
    if passphrase_file:
        with open(passphrase_file, encoding="utf-8") as f:
            text = f.readline().rstrip("\r\n")
        if not text:
            raise click.ClickException(f"{passphrase_file} is empty: put the passphrase on its first line")
        return text
    if prompt:
        return click.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm)
    return None


def _sqlite_path(uri):
    url = make_url(uri)
    return url.database if url.get_backend_name() == "sqlite" else None


def _destination(path, encrypted):
    """``path``, or a dated name inside it when it is a folder (a daily timer's case)."""
    if os.path.isdir(path):
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return os.path.join(path, f"isvapp-backup-{stamp}.tar.gz" + (".enc" if encrypted else ""))
    return path


# --- backup ------------------------------------------------------------------------------------------


def _secret_source(app):
    """Where the SECRET_KEY in force comes from: instance/config.py, or the environment."""
    from_file = load(configure(Config(app.instance_path), app.instance_path, environment=False))
    return "instance/config.py" if from_file.secret_key == settings_of(app).secret_key else "the environment"


@click.command("backup")
@click.argument("path", type=click.Path())
@click.option(
    "--passphrase-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Encrypt with the passphrase on this file's first line.",
)
@click.option("--encrypt", is_flag=True, help="Encrypt with a passphrase asked for at the prompt.")
@with_appcontext
def backup_command(path, passphrase_file, encrypt):
    """Write ONE archive at PATH (or a dated one inside the folder PATH): the database, SECRET_KEY,
    the key files and instance/config.py, mode 600. On PostgreSQL the database is pg_dump's job."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # a proxy
    secret = settings_of(app).secret_key
    if not secret:
        raise click.ClickException("SECRET_KEY is not set: a backup without it could not read back what it seals")
    target = _destination(path, encrypted=bool(passphrase_file or encrypt))
    folder = os.path.dirname(os.path.abspath(target))
    if os.path.lexists(target):
        raise click.ClickException(f"{target} exists: a backup never overwrites a file; choose a new name")
    if not os.path.isdir(folder):
        raise click.ClickException(f"{folder} is not a folder: make it first (mode 700)")
    passphrase = _passphrase(passphrase_file, encrypt, confirm=True)
    staging = tempfile.mkdtemp(prefix=".isvapp-backup-", dir=folder)
    try:
        files, manifest, lines = _gather(app, secret, staging)
        try:
            size = archive.write(target, files, manifest, passphrase)
        except archive.ArchiveError as error:
            raise click.ClickException(str(error)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    try:
        status.report(
            "backup",
            {"path": os.path.abspath(target), "bytes": size, "encrypted": bool(passphrase), **manifest["database"]},
        )
    except SQLAlchemyError as error:
        lines.append(f"(not noted for the go-live page: the database is not reachable: {type(error).__name__})")
    click.echo(f"Wrote {os.path.abspath(target)} ({size / 1048576:.1f} MiB, mode 600).")
    for line in lines:
        click.echo(f"  {line}")
    if not passphrase:
        click.echo(
            "  Not encrypted: it holds SECRET_KEY and the private keys. Keep it as you keep them (or use --encrypt)."
        )


def _gather(app, secret, staging):
    """(files to archive, the manifest, what to tell the merchant)."""
    files, lines = {}, []
    manifest = {
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "instance_path": app.instance_path,
        "keys": {},
    }
    settings = settings_of(app)
    database = _sqlite_path(settings.database.uri)
    if database is not None:
        copy = os.path.join(staging, "isvapp.sqlite")
        counts = backup_sqlite(copy)
        files[DATABASE_MEMBER] = copy
        manifest["database"] = {"kind": "sqlite", "tables": len(counts), "rows": sum(counts.values())}
        lines.append(
            f"database: {sum(counts.values())} rows in {len(counts)} tables (online backup, integrity_check ok)"
        )
    else:
        manifest["database"] = {"kind": "postgresql"}
        lines.append(
            "database: PostgreSQL is not in this archive: dump it beside it, e.g. "
            "pg_dump --format=custom --file=isvapp-$(date +%F).dump <database> (docs/deploy.md, Backup and restore)"
        )
    secret_file = os.path.join(staging, "SECRET_KEY")
    with os.fdopen(create_private(secret_file), "w") as f:
        f.write(secret)
    files["SECRET_KEY"] = secret_file
    manifest["secret_key"] = {"source": _secret_source(app), "fingerprint": key_fingerprint(secret)}
    lines.append(f"SECRET_KEY {key_fingerprint(secret)} (from {manifest['secret_key']['source']})")
    for setting, key_path in settings.key_files().items():
        if not os.path.isfile(key_path):
            continue
        with open(key_path, "rb") as f:
            fingerprint = public_fingerprint(f.read())
        files[_key_member(setting)] = key_path
        manifest["keys"][setting] = {"path": os.path.abspath(key_path), "fingerprint": fingerprint}
        lines.append(f"{setting}: {fingerprint} ({key_path})")
    config_file = os.path.join(app.instance_path, "config.py")
    if os.path.isfile(config_file):
        files["config.py"] = config_file
        lines.append(f"instance/config.py ({config_file})")
    return files, manifest, lines


# --- restore -----------------------------------------------------------------------------------------


class Plan:
    """What a restore will write, worked out (and refused) before anything is written."""

    def __init__(self, instance_path, staging, manifest):
        self.instance_path, self.staging, self.manifest = instance_path, staging, manifest
        self.secret = self.staged("SECRET_KEY", text=True)
        self.config_path = os.path.join(instance_path, "config.py")
        self.existing_config = _read_text(self.config_path)
        self.config_text = self.staged("config.py", text=True) or self.existing_config
        self.writes = []  # (bytes, or the path of a staged file to move; destination; what it is)
        self.notes = []

    def staged(self, member, text=False):
        path = os.path.join(self.staging, archive.staged_name(member))
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") if text else open(path, "rb") as f:
            return f.read()


def _read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _restored_config(plan, environment=True):
    """The configuration the server will read once config.py is back (and the environment as now)."""
    staged = os.path.join(plan.staging, "config.py.next")
    with open(staged, "w", encoding="utf-8") as f:
        f.write(plan.config_text or "")
    return configure(Config(plan.instance_path), plan.instance_path, config_file=staged, environment=environment)


def _has_data(path):
    """True when the SQLite file at ``path`` holds a row in any table but the bookkeeping ones."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return False
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        skip = {"alembic_version", "status_items", "sqlite_sequence"}
        return any(connection.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() for t in tables if t not in skip)
    except sqlite3.Error:
        return True  # unreadable: not ours to judge empty
    finally:
        connection.close()


def _worker_seen(path):
    """Seconds since a worker last beat against the SQLite file at ``path`` (None: never, or no file)."""
    if not os.path.exists(path):
        return None
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT updated_at FROM status_items WHERE name = 'worker_heartbeat'").fetchone()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    if row is None:
        return None
    seen = datetime.fromisoformat(str(row[0]))
    return (datetime.now(UTC).replace(tzinfo=None) - seen).total_seconds()


def _plan(plan, force):
    refusals = []
    config = _restored_config(plan)
    restored, without_environment = load(config), load(_restored_config(plan, environment=False))
    # SECRET_KEY: what the server will read must be the backup's.
    if restored.secret_key != plan.secret:
        if restored.secret_key != without_environment.secret_key:
            refusals.append(
                "ISVAPP_SECRET_KEY in this environment is not the SECRET_KEY of the backup: the stored passwords "
                "could not be read. Unset it (the restored instance/config.py then holds the key) or set it to "
                f"the backup's ({key_fingerprint(plan.secret)})"
            )
        else:
            plan.config_text = (plan.config_text or "") + (
                "\n# Restored from a backup: this SECRET_KEY was in force (it came from "
                f"{plan.manifest['secret_key']['source']}).\nSECRET_KEY = {plan.secret!r}\n"
            )
            plan.notes.append("SECRET_KEY written into instance/config.py (it came from the environment)")
            config = _restored_config(plan)
            restored = load(config)
    if plan.config_text is not None and plan.config_text != plan.existing_config:
        plan.writes.append((plan.config_text.encode("utf-8"), plan.config_path, "instance/config.py"))
    for setting in plan.manifest.get("keys", {}):
        pem = plan.staged(_key_member(setting))
        destination = restored.key_files()[setting]
        if os.path.exists(destination):
            with open(destination, "rb") as f:
                if f.read() == pem:
                    continue
            if not force:
                refusals.append(
                    f"{setting} exists at {destination} and differs from the backup's (--force replaces it)"
                )
        plan.writes.append((pem, destination, setting))
    database = _sqlite_path(restored.database.uri)
    kind = plan.manifest.get("database", {}).get("kind")
    if kind == "sqlite" and database is None:
        refusals.append("the archive holds a SQLite database but this instance is configured for PostgreSQL")
    elif kind == "sqlite":
        if _has_data(database) and not force:
            refusals.append(
                f"{database} holds data (or cannot be read): restoring would replace it (stop the server, then --force)"
            )
        seen = _worker_seen(database)
        if seen is not None and seen < WORKER_RUNNING_S and not force:
            refusals.append(f"a worker used {database} {seen:.0f} s ago: stop the server and the worker first")
        plan.writes.append((os.path.join(plan.staging, archive.staged_name(DATABASE_MEMBER)), database, "database"))
    else:
        plan.notes.append(
            "the archive holds no database (it was made on PostgreSQL): restore its pg_dump with pg_restore "
            "into the database instance/config.py names; the checks below read that database"
        )
    return config, refusals


def _install(content, destination, stamp):
    """Put ``content`` (bytes, or a staged file's path, moved) at ``destination``, mode 600; what
    was there is kept beside it as ``<name>.before-restore-<stamp>`` (a database with its -wal and
    -shm, so the kept copy stays whole), never overwritten."""
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    kept = None
    if os.path.lexists(destination):
        kept = f"{destination}.before-restore-{stamp}"
        for suffix in ("-wal", "-shm", "-journal", ""):
            if os.path.lexists(destination + suffix):
                os.rename(destination + suffix, kept + suffix)
    for suffix in ("-wal", "-shm", "-journal"):  # an old log must never be replayed into the new file
        if os.path.lexists(destination + suffix):
            os.remove(destination + suffix)
    if isinstance(content, str):
        shutil.move(content, destination)  # staged in the instance folder: a rename, unless it lives elsewhere
    else:
        write_private_file(destination, content, replace=True)
    os.chmod(destination, 0o600)
    return kept


@click.command("restore")
@click.argument("archive_path", metavar="ARCHIVE", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--passphrase-file", type=click.Path(exists=True, dir_okay=False), help="The passphrase, on this file's first line."
)
@click.option("--force", is_flag=True, help="Replace a database that holds data, and key files that differ.")
@with_appcontext
def restore_command(archive_path, passphrase_file, force):
    """Put a backup ARCHIVE back into the instance folder, then check it: the keys load, stored
    secrets unseal, and a stored order is answered again byte for byte. Stop the server first."""
    instance_path = current_app.instance_path
    passphrase = None
    if archive.is_encrypted(archive_path):
        passphrase = _passphrase(passphrase_file, sys.stdin.isatty(), confirm=False)
        if passphrase is None:
            raise click.ClickException("the archive is encrypted: give its passphrase with --passphrase-file")
    staging = tempfile.mkdtemp(prefix=".restore-", dir=instance_path)
    try:
        try:
            manifest = archive.read(archive_path, staging, passphrase, allowed=_allowed)
        except archive.ArchiveError as error:
            raise click.ClickException(f"{archive_path}: {error}; nothing was restored") from None
        plan = Plan(instance_path, staging, manifest)
        if plan.secret is None:
            raise click.ClickException(
                f"{archive_path} holds no SECRET_KEY: not an isvapp backup; nothing was restored"
            )
        config, refusals = _plan(plan, force)
        if refusals:
            raise click.ClickException("nothing was restored:\n  " + "\n  ".join(refusals))
        database = _sqlite_path(load(config).database.uri)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for content, destination, what in plan.writes:
            kept = _install(content, destination, stamp)
            click.echo(f"restored {what}: {destination}" + (f" (what was there is kept as {kept})" if kept else ""))
        for note in plan.notes:
            click.echo(f"note: {note}")
        failures = _check(config, database, manifest, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if failures:
        raise click.ClickException(f"the restored instance failed {failures} check(s): see above")
    click.echo("Restored and checked. Start the server and the worker.")


# --- the check -----------------------------------------------------------------------------------------


def _check(config, database, manifest, staging):
    """Prove the restore on the restored files; prints each check, returns how many failed.

    On SQLite the checks run on a scratch copy, migrated as the server's init-db will: the resend
    they make (a new nonce, a callback log row) never reaches the restored database.
    """
    failures = 0

    def say(ok, text):
        nonlocal failures
        failures += 0 if ok else 1
        click.echo(f"{'ok    ' if ok else 'FAILED'} {text}")

    key_files = load(config).key_files()
    for setting, kept in manifest.get("keys", {}).items():
        try:
            with open(key_files[setting], "rb") as f:
                fingerprint = public_fingerprint(f.read())
        except (OSError, ValueError) as error:
            say(False, f"{setting} at {key_files[setting]} cannot be read: {error}")
            continue
        say(fingerprint == kept["fingerprint"], f"{setting} loads: {fingerprint} (backed up: {kept['fingerprint']})")
    overrides = {}
    if database is None:
        click.echo("note: on PostgreSQL the checks read the database itself: the resend below is in its callback log")
    else:
        scratch = os.path.join(staging, "check.sqlite")
        source, copy = sqlite3.connect(database), sqlite3.connect(scratch)
        try:
            source.backup(copy)
            say(copy.execute("PRAGMA integrity_check").fetchone() == ("ok",), "database: integrity_check")
        finally:
            source.close()
            copy.close()
        overrides["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + scratch
    app = create_app({**config, **overrides, "INSTANCE_PATH": config.root_path})
    try:
        with app.app_context():
            if database is not None:
                init_db()
            _check_secrets(app, say)
            _check_resend(app, say)
    finally:
        with app.app_context():
            db.engine.dispose()
    return failures


SAMPLE = 50


def _check_secrets(app, say):
    secret = settings_of(app).secret_key
    sealed = [
        *db.session.execute(
            select(Instance.admin_password_sealed)
            .where(Instance.admin_password_sealed.is_not(None))
            .order_by(Instance.id.desc())
            .limit(SAMPLE)
        ).scalars(),
        *db.session.execute(
            select(KitApp.client_secret_sealed)
            .where(KitApp.client_secret_sealed.is_not(None))
            .order_by(KitApp.id.desc())
            .limit(SAMPLE)
        ).scalars(),
    ]
    if not sealed:
        say(True, "SECRET_KEY: nothing sealed is stored yet (no orders, no Kit apps) to try it on")
        return
    opened = 0
    for token in sealed:
        try:
            vault.unseal(secret, token)
            opened += 1
        except Exception:  # noqa: BLE001  InvalidTag, or a malformed value: either way it does not open
            pass
    say(
        opened == len(sealed),
        f"SECRET_KEY unseals the stored buyer passwords and client secrets ({opened} of the {len(sealed)} newest)",
    )


def _candidate():
    """The newest newInstance on /produce the callback log kept, answered 000000, whose instance
    is live and whose first answer is stored: (its log row, the stored answer's bytes)."""
    rows = db.session.execute(
        select(Callback, Answer.body)
        .join(Answer, (Answer.instance_id == Callback.instance_id) & (Answer.activity == "newInstance"))
        .join(Instance, Instance.instance_id == Callback.instance_id)
        .where(
            Callback.path == "/produce",
            Callback.activity == "newInstance",
            Callback.result_code == "000000",
            Answer.body.is_not(None),
            Instance.state != InstanceState.RELEASED,
        )
        .order_by(Callback.id.desc())
        .limit(20)
    ).all()
    return rows


def _resend(client, row, key):
    """The logged request, signed again with ``key``: a resend as the marketplace makes it."""
    logged = json.loads(row.request or "{}")
    if row.method == "POST":
        raw, query = g2_signed_request(key, canonical_payload(logged["body"]).encode("utf-8"))
        return client.post("/produce", query_string=query, data=raw, content_type="application/json")
    params = {k: v for k, v in (logged.get("query") or {}).items() if k not in ("authToken", "timeStamp")}
    return client.get("/produce?" + urlencode(g1_signed_params(key, params)))


def _check_resend(app, say):
    keys = {key_fingerprint(k): k for k in settings_of(app).access_keys}
    candidates = _candidate()
    db.session.remove()  # the resend's request runs its own transactions
    for row, stored in candidates:
        key = keys.get(row.key_fingerprint) or (next(iter(keys.values()), None) if not row.key_fingerprint else None)
        if key is None or not isinstance(row.request, str):
            continue
        response = _resend(app.test_client(), row, key)
        response.close()
        same = response.data == bytes(stored)
        signed = verify_body_sign(key, response.data, response.headers.get("Body-Sign", ""))
        say(
            same and signed,
            f"a resend of order {row.order_id}'s newInstance (instance {row.instance_id}, logged "
            f"{row.received_at:%Y-%m-%d %H:%M} UTC) is answered "
            + (
                f"with its stored answer byte for byte ({len(stored)} bytes, Body-Sign verified)"
                if same and signed
                else f"differently: {response.data[:200]!r} instead of {bytes(stored)[:200]!r}"
            ),
        )
        return
    say(True, "no stored newInstance to resend (none logged yet, or the callback log was pruned)")


def init_app(app):
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)
