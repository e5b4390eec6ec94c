"""`isvapp backup` and `isvapp restore`: one archive with everything a restore needs, and a restore
that proves itself (a resend answered byte for byte, a buyer's password unsealed, the keys read).

The round trips run the real command (`python -m isvapp`, as a merchant types it) on instance
folders configured as a server is: instance/config.py and ISVAPP_* variables.
"""

import io
import json
import os
import stat
import subprocess
import sys
import tarfile

import pytest
from isvapp import archive, create_app
from isvapp.background.maintenance import backup_sqlite
from isvapp.config import KEY_FILES
from isvapp.extensions import db
from isvapp.storage import vault
from isvapp.storage.keys import signing_key
from isvapp.storage.models import Instance, StatusItem
from isvapp.storage.schema import init_db
from sqlalchemy import create_engine, select, text

from .helpers import KEY, ON_POSTGRES, Marketplace, g1_order, new_order
from .live import ROOT

pytestmark = pytest.mark.live  # every test here starts a server, a process or a browser

SECRET = "backup-test-secret-0123456789abcdefghijklmnop"
PASSPHRASE = "correct horse battery staple"


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def env_for(folder, **extra):
    """The environment of a server whose instance folder is ``folder`` (and nothing else of ours)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISVAPP_")}
    return {**env, "ISVAPP_INSTANCE_PATH": str(folder), "PYTHONPATH": str(ROOT), **extra}


def isvapp(folder, *args, env=None, input=None):
    return subprocess.run(
        [sys.executable, "-m", "isvapp", *args],
        cwd=ROOT,
        env=env or env_for(folder),
        capture_output=True,
        text=True,
        timeout=120,
        input=input,
    )


def write_config(folder, secret=SECRET):
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"KOO_ACCESS_KEY = {KEY!r}"] + ([f"SECRET_KEY = {secret!r}"] if secret else [])
    (folder / "config.py").write_text("\n".join(lines) + "\n")
    os.chmod(folder / "config.py", 0o600)


def server_app(folder, monkeypatch, **env):
    """create_app() as the server makes it: config.py and the environment, no test config."""
    for name in [k for k in os.environ if k.startswith("ISVAPP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ISVAPP_INSTANCE_PATH", str(folder))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return create_app()


class Shop:
    """An instance folder with orders in it, made through signed requests, and its keys."""

    def __init__(self, folder, monkeypatch, **env):
        self.folder, self.app = folder, server_app(folder, monkeypatch, **env)
        with self.app.app_context():
            init_db()
            for setting in ("LICENSE_SIGNING_KEY", "LOGIN_SIGNING_KEY"):
                signing_key(self.app.config[setting])
        assert self.app.test_cli_runner().invoke(args=["kit-keygen"]).exit_code == 0
        self.market = Marketplace(self.app, self.app.test_client())
        self.first = self.market.g2(new_order(order="BACKUP1", business="backup-1"))
        for n in range(2, 5):
            self.market.g2(new_order(order=f"BACKUP{n}", business=f"backup-{n}"))
        query = self.market.g2({"activity": "queryInstance", "instanceId": "backup-1"})
        self.password = json.loads(query.data)["info"][0]["appInfo"]["password"]

    def keys(self):
        return {s: open(self.app.config[s], "rb").read() for s in KEY_FILES}

    def close(self):
        with self.app.app_context():
            db.engine.dispose()


@pytest.fixture
def shop(tmp_path, monkeypatch):
    write_config(tmp_path / "shop")
    made = Shop(tmp_path / "shop", monkeypatch)
    yield made
    made.close()


def table_rows(path, names):
    """Every row of every table, for comparing a restored database with its original."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            return {t: sorted(map(tuple, connection.execute(text(f'SELECT * FROM "{t}"')).all())) for t in names}
    finally:
        engine.dispose()


def members(path):
    with tarfile.open(path, "r:gz") as tar:
        return [m.name for m in tar.getmembers()]


def restored(folder, monkeypatch):
    """The restored instance as its server will run: create_app() on its folder."""
    return server_app(folder, monkeypatch)


@pytest.mark.sqlite_only
def test_a_backup_restores_into_a_fresh_folder_and_serves_as_before(shop, tmp_path, monkeypatch):
    path = tmp_path / "backups" / "isvapp.tar.gz"
    path.parent.mkdir()
    made = isvapp(shop.folder, "backup", str(path))
    assert made.returncode == 0, made.stdout + made.stderr
    assert mode(path) == 0o600
    assert members(path) == [
        "manifest.json",
        "database/isvapp.sqlite",
        "SECRET_KEY",
        "keys/LICENSE_SIGNING_KEY.pem",
        "keys/KOO_KIT_RSA_PRIVATE_KEY.pem",
        "keys/LOGIN_SIGNING_KEY.pem",
        "config.py",
    ]
    assert "Not encrypted" in made.stdout and SECRET not in made.stdout  # keys are shown by fingerprint only
    with shop.app.app_context():  # the go-live page's "Last backup" row
        noted = db.session.get(StatusItem, "backup").value
    assert noted["path"] == str(path) and noted["encrypted"] is False and noted["kind"] == "sqlite"

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    back = isvapp(fresh, "restore", str(path))
    print(back.stdout)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "FAILED" not in back.stdout
    assert "answered with its stored answer byte for byte" in back.stdout
    assert "unseals the stored buyer passwords" in back.stdout and "(4 of the 4 newest)" in back.stdout
    for setting in KEY_FILES:
        assert f"ok     {setting} loads" in back.stdout

    # every row is back (status_items: the backup noted itself there once its copy was taken)
    names = [t.name for t in db.metadata.sorted_tables if t.name != "status_items"] + ["alembic_version"]
    assert table_rows(fresh / "isvapp.sqlite", names) == table_rows(shop.folder / "isvapp.sqlite", names)

    app = restored(fresh, monkeypatch)
    try:
        again = Marketplace(app, app.test_client()).g2(new_order(order="BACKUP1", business="a-retry"))
        assert again.data == shop.first.data  # the marketplace's resend, answered byte for byte
        assert again.headers["Body-Sign"] == shop.first.headers["Body-Sign"]
        with app.app_context():
            sealed = db.session.execute(
                select(Instance.admin_password_sealed).where(Instance.instance_id == "backup-1")
            ).scalar_one()
            assert vault.unseal(app.config["SECRET_KEY"], sealed) == shop.password
        assert {s: open(app.config[s], "rb").read() for s in KEY_FILES} == shop.keys()
        assert all(mode(app.config[s]) == 0o600 for s in KEY_FILES) and mode(fresh / "config.py") == 0o600
        assert mode(fresh / "isvapp.sqlite") == 0o600
    finally:
        with app.app_context():
            db.engine.dispose()


@pytest.mark.sqlite_only
def test_a_secret_key_from_the_environment_travels_in_the_archive(tmp_path, monkeypatch):
    write_config(tmp_path / "shop", secret=None)
    shop = Shop(tmp_path / "shop", monkeypatch, ISVAPP_SECRET_KEY=SECRET)
    try:
        g1 = shop.market.g1(g1_order(order="G1BACKUP", business="g1-backup"))  # the newest: the check resends it
        assert g1.status_code == 200 and b"g1-backup" in g1.data
        path = tmp_path / "env.tar.gz"
        made = isvapp(shop.folder, "backup", str(path), env=env_for(shop.folder, ISVAPP_SECRET_KEY=SECRET))
        assert made.returncode == 0 and "(from the environment)" in made.stdout, made.stdout + made.stderr

        fresh = tmp_path / "fresh"
        other = isvapp(fresh, "restore", str(path), env=env_for(fresh, ISVAPP_SECRET_KEY="x" * 40))
        assert other.returncode != 0 and "ISVAPP_SECRET_KEY in this environment is not" in other.stderr
        assert not (fresh / "isvapp.sqlite").exists()  # refused before anything was written

        back = isvapp(fresh, "restore", str(path))  # no key in the environment: config.py gets it
        assert back.returncode == 0 and "SECRET_KEY written into instance/config.py" in back.stdout, back.stderr
        assert f"SECRET_KEY = {SECRET!r}" in (fresh / "config.py").read_text()
        assert "order G1BACKUP's newInstance" in back.stdout and "byte for byte" in back.stdout
        assert "(5 of the 5 newest)" in back.stdout
    finally:
        shop.close()


@pytest.mark.sqlite_only
def test_an_encrypted_archive_needs_its_passphrase(shop, tmp_path):
    (tmp_path / "pass").write_text(PASSPHRASE + "\n")
    (tmp_path / "wrong").write_text("not the passphrase\n")
    path = tmp_path / "sealed.tar.gz.enc"
    made = isvapp(shop.folder, "backup", str(path), "--passphrase-file", str(tmp_path / "pass"))
    assert made.returncode == 0, made.stderr
    raw = path.read_bytes()
    assert raw.startswith(archive.MAGIC) and b"manifest.json" not in raw and SECRET.encode() not in raw
    assert mode(path) == 0o600

    fresh = tmp_path / "fresh"
    for args, message in (
        (["--passphrase-file", str(tmp_path / "wrong")], "wrong passphrase"),
        ([], "the archive is encrypted: give its passphrase"),  # no terminal to ask on
    ):
        refused = isvapp(fresh, "restore", str(path), *args)
        assert refused.returncode != 0 and message in refused.stderr, refused.stderr
        assert not (fresh / "isvapp.sqlite").exists() and not (fresh / "config.py").exists()
    back = isvapp(fresh, "restore", str(path), "--passphrase-file", str(tmp_path / "pass"))
    assert back.returncode == 0 and "byte for byte" in back.stdout, back.stdout + back.stderr


def rewrite(source, target, change):
    """The archive at ``source`` written again to ``target`` with ``change(name, data)`` applied to
    each member (None drops it), the manifest left as it was: what an attacker or a bad disk does."""
    with tarfile.open(source, "r:gz") as tar, tarfile.open(target, "w:gz") as out:
        for member in tar.getmembers():
            data = change(member.name, tar.extractfile(member).read())
            if data is not None:
                member.size = len(data)
                out.addfile(member, io.BytesIO(data))


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    "change, message",
    [
        (lambda n, d: d.replace(b"backup-1", b"backup-X") if n.startswith("database") else d, "does not match"),
        (lambda n, d: None if n == "SECRET_KEY" else d, "SECRET_KEY is in its manifest but not in it"),
        (lambda n, d: d + b"\nKOO_ACCESS_KEY = 'attacker'\n" if n == "config.py" else d, "does not match"),
    ],
    ids=["a changed database", "a missing member", "a changed config"],
)
def test_a_tampered_archive_is_refused_and_nothing_restored(shop, tmp_path, change, message):
    path = tmp_path / "good.tar.gz"
    assert isvapp(shop.folder, "backup", str(path)).returncode == 0
    bad = tmp_path / "bad.tar.gz"
    rewrite(path, bad, change)
    fresh = tmp_path / "fresh"
    refused = isvapp(fresh, "restore", str(bad))
    assert refused.returncode != 0 and message in refused.stderr and "nothing was restored" in refused.stderr
    assert sorted(p.name for p in fresh.iterdir()) == []  # not even the staging folder is left


@pytest.mark.sqlite_only
def test_a_damaged_encrypted_archive_is_refused(shop, tmp_path):
    (tmp_path / "pass").write_text(PASSPHRASE)
    path = tmp_path / "sealed.enc"
    assert isvapp(shop.folder, "backup", str(path), "--passphrase-file", str(tmp_path / "pass")).returncode == 0
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (tmp_path / "flipped.enc").write_bytes(bytes(raw))
    (tmp_path / "cut.enc").write_bytes(bytes(raw[: len(raw) - 40]))
    for name in ("flipped.enc", "cut.enc"):
        refused = isvapp(
            tmp_path / "fresh", "restore", str(tmp_path / name), "--passphrase-file", str(tmp_path / "pass")
        )
        assert refused.returncode != 0 and "changed, cut short or damaged" in refused.stderr, refused.stderr


@pytest.mark.sqlite_only
def test_an_archive_with_a_member_no_backup_has_is_refused(shop, tmp_path):
    path = tmp_path / "good.tar.gz"
    assert isvapp(shop.folder, "backup", str(path)).returncode == 0
    bad = tmp_path / "extra.tar.gz"
    with tarfile.open(path, "r:gz") as tar, tarfile.open(bad, "w:gz") as out:
        for member in tar.getmembers():
            out.addfile(member, tar.extractfile(member))
        evil = tarfile.TarInfo("../../etc/cron.d/evil")
        evil.size = 4
        out.addfile(evil, io.BytesIO(b"evil"))
    refused = isvapp(tmp_path / "fresh", "restore", str(bad))
    assert refused.returncode != 0 and "which no isvapp backup has" in refused.stderr
    assert not (tmp_path / "etc").exists()


@pytest.mark.sqlite_only
def test_a_database_with_data_is_replaced_only_with_force_and_kept_beside(shop, tmp_path):
    path = tmp_path / "one.tar.gz"
    assert isvapp(shop.folder, "backup", str(path)).returncode == 0
    shop.market.g2(new_order(order="AFTER-BACKUP", business="after"))
    refused = isvapp(shop.folder, "restore", str(path))
    assert refused.returncode != 0 and "holds data" in refused.stderr and "--force" in refused.stderr
    forced = isvapp(shop.folder, "restore", str(path), "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    kept = [p for p in shop.folder.iterdir() if p.name.startswith("isvapp.sqlite.before-restore-")]
    assert kept, list(shop.folder.iterdir())
    engine = create_engine(f"sqlite:///{shop.folder / 'isvapp.sqlite'}")
    with engine.connect() as connection:
        ids = set(connection.execute(text("SELECT instance_id FROM instances")).scalars())
    engine.dispose()
    assert "after" not in ids and "backup-1" in ids  # the database is the backup's


@pytest.mark.sqlite_only
def test_a_backup_never_overwrites_nor_writes_through_a_symlink(shop, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    link = tmp_path / "link.tar.gz"
    os.symlink(victim, link)
    refused = isvapp(shop.folder, "backup", str(link))
    assert refused.returncode != 0 and "exists" in refused.stderr and victim.read_text() == "untouched"
    assert isvapp(shop.folder, "backup", str(victim)).returncode != 0 and victim.read_text() == "untouched"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging or partial file left

    folder = tmp_path / "daily"
    folder.mkdir()
    dated = isvapp(shop.folder, "backup", str(folder))  # a folder: a dated name inside it
    assert dated.returncode == 0, dated.stderr
    (made,) = folder.iterdir()
    assert made.name.startswith("isvapp-backup-") and made.name.endswith(".tar.gz") and mode(made) == 0o600


@pytest.mark.sqlite_only
def test_the_sqlite_copy_is_never_written_through_a_planted_partial_file(app, tmp_path):
    copy = tmp_path / "copy.sqlite"
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    os.symlink(victim, str(copy) + ".partial")
    with app.app_context():
        backup_sqlite(str(copy))
    assert victim.read_text() == "untouched" and mode(copy) == 0o600 and not copy.is_symlink()


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL's case: scripts/with-postgres.sh runs it")
def test_on_postgresql_the_archive_holds_the_keys_and_the_checks_read_the_database(database_uri, tmp_path, monkeypatch):
    write_config(tmp_path / "shop")
    shop = Shop(tmp_path / "shop", monkeypatch, ISVAPP_SQLALCHEMY_DATABASE_URI=database_uri)
    try:
        path = tmp_path / "pg.tar.gz"
        made = isvapp(
            shop.folder, "backup", str(path), env=env_for(shop.folder, ISVAPP_SQLALCHEMY_DATABASE_URI=database_uri)
        )
        assert made.returncode == 0 and "pg_dump --format=custom" in made.stdout, made.stdout + made.stderr
        assert "database/isvapp.sqlite" not in members(path) and "keys/LICENSE_SIGNING_KEY.pem" in members(path)

        fresh = tmp_path / "fresh"  # a new host sharing the database: its keys and config come back
        back = isvapp(fresh, "restore", str(path), env=env_for(fresh, ISVAPP_SQLALCHEMY_DATABASE_URI=database_uri))
        assert back.returncode == 0, back.stdout + back.stderr
        assert "pg_restore" in back.stdout and "on PostgreSQL the checks read the database itself" in back.stdout
        assert "(4 of the 4 newest)" in back.stdout and "byte for byte" in back.stdout
        assert (fresh / "license_ed25519.pem").read_bytes() == shop.keys()["LICENSE_SIGNING_KEY"]
    finally:
        shop.close()
