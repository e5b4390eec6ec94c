"""The backup archive's format: one file, a manifest with each member's SHA-256, optionally
encrypted with a passphrase. Pure: no Flask, no database (isvapp/backups.py fills and empties it).

Plain, it is a gzip'd tar (``tar tzf`` lists it) whose first member, ``manifest.json``, names
every other member with its size and SHA-256: a member changed, added or missing is refused on
reading. Encrypted, the same tar.gz is sealed in a container of our own:

    MAGIC (16 bytes) | version (1) | log2 N, r, p (1 each) | salt (16) | check (16) | nonce prefix (7)
    then chunks of at most CHUNK bytes, each AES-256-GCM with its own nonce
    (prefix | chunk number, 4 bytes | 1 on the last chunk, else 0) and the header as associated data.

The key and the check come from scrypt(passphrase, salt): the check tells a wrong passphrase
from a damaged file (it costs a guesser the same scrypt as trying the key), the chunk numbers
and the last-chunk flag make a reordered, cut or extended file fail to open. Chunks keep memory
flat whatever the database's size.

The archive holds SECRET_KEY and the private keys: it is written with mode 600, created
exclusively (an existing file, or a symlink planted at the path, is never written through).
"""

import hashlib
import hmac
import io
import json
import os
import tarfile
import time
import unicodedata

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .privatefiles import create_private, write_private_file

FORMAT, VERSION = "isvapp-backup", 1
MANIFEST = "manifest.json"
MAGIC = b"isvapp-backup-v\x01"
CONTAINER_VERSION = 1
CHUNK = 1024 * 1024
SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P = 15, 8, 1  # 32 MiB and about 0.1 s per try
_HEADER = len(MAGIC) + 4 + 16 + 16 + 7
_TAG = 16


class ArchiveError(Exception):
    """The archive cannot be written or read; the message says why and what to do."""


class WrongPassphrase(ArchiveError):
    pass


def _derive(passphrase, salt, log2_n, r, p):
    material = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    derived = Scrypt(salt=salt, length=48, n=2**log2_n, r=r, p=p).derive(material)
    return derived[:32], derived[32:]


def _nonce(prefix, number, last):
    return prefix + number.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class _EncryptingWriter(io.RawIOBase):
    """What tarfile writes, sealed chunk by chunk onto ``raw``; finish() seals the last chunk."""

    def __init__(self, raw, passphrase):
        salt, prefix = os.urandom(16), os.urandom(7)
        key, check = _derive(passphrase, salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P)
        self.header = MAGIC + bytes([CONTAINER_VERSION, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P]) + salt + check + prefix
        self.raw, self.aead, self.prefix, self.number, self.buffer = raw, AESGCM(key), prefix, 0, bytearray()
        raw.write(self.header)

    def writable(self):
        return True

    def write(self, data):
        self.buffer += data
        while len(self.buffer) > CHUNK:  # strictly more: the last chunk is sealed only at close()
            self._seal(bytes(self.buffer[:CHUNK]), last=False)
            del self.buffer[:CHUNK]
        return len(data)

    def _seal(self, chunk, last):
        self.raw.write(self.aead.encrypt(_nonce(self.prefix, self.number, last), chunk, self.header))
        self.number += 1

    def finish(self):
        self._seal(bytes(self.buffer), last=True)
        self.buffer.clear()


class _DecryptingReader(io.RawIOBase):
    """The tar.gz inside an encrypted archive, opened chunk by chunk as tarfile reads it."""

    def __init__(self, raw, passphrase):
        header = raw.read(_HEADER)
        if len(header) < _HEADER or not header.startswith(MAGIC):
            raise ArchiveError("this is not an encrypted isvapp archive (or its start is damaged)")
        version, log2_n, r, p = header[len(MAGIC) : len(MAGIC) + 4]
        if version != CONTAINER_VERSION:
            raise ArchiveError(f"the archive's encryption is version {version}; this isvapp reads {CONTAINER_VERSION}")
        if not (10 <= log2_n <= 22 and 1 <= r <= 32 and 1 <= p <= 16):
            raise ArchiveError("the archive's header is damaged (its key derivation parameters are out of range)")
        at = len(MAGIC) + 4
        salt, check, prefix = header[at : at + 16], header[at + 16 : at + 32], header[at + 32 :]
        key, expected = _derive(passphrase, salt, log2_n, r, p)
        if not hmac.compare_digest(check, expected):
            raise WrongPassphrase("wrong passphrase: this archive was encrypted with another one")
        self.raw, self.header, self.aead, self.prefix = raw, header, AESGCM(key), prefix
        self.number, self.plain, self.done = 0, b"", False

    def readable(self):
        return True

    def _next_chunk(self):
        sealed = self.raw.read(CHUNK + _TAG)
        last = len(sealed) < CHUNK + _TAG or not self.raw.peek(1)[:1]
        try:
            self.plain = self.aead.decrypt(_nonce(self.prefix, self.number, last), sealed, self.header)
        except InvalidTag:
            raise ArchiveError(
                f"the archive was changed, cut short or damaged (its part {self.number + 1} does not open)"
            ) from None
        self.number += 1
        self.done = last

    def readinto(self, buffer):
        while not self.plain and not self.done:
            self._next_chunk()
        size = min(len(buffer), len(self.plain))
        buffer[:size] = self.plain[:size]
        self.plain = self.plain[size:]
        return size


def is_encrypted(path):
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def _digest(path):
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            sha.update(block)
    return sha.hexdigest()


def _info(name, size):
    """A member's header: its name and size, nothing of who wrote it where."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())
    return info


def write(path, files, manifest, passphrase=None):
    """Write the archive at ``path`` (which must not exist): ``manifest`` (members added), then
    ``files`` ({member name: the file to copy}). Returns its size in bytes.

    It is written to a private temporary file beside ``path`` and linked into place: nobody sees
    half an archive, and link() refuses any entry already at ``path``, a symlink included.
    """
    path = os.path.abspath(path)
    members = {name: {"size": os.path.getsize(source), "sha256": _digest(source)} for name, source in files.items()}
    body = json.dumps({**manifest, "format": FORMAT, "version": VERSION, "members": members}, indent=2).encode()

    def pack(raw):
        sink = _EncryptingWriter(raw, passphrase) if passphrase else raw
        with tarfile.open(fileobj=sink, mode="w|gz", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_info(MANIFEST, len(body)), io.BytesIO(body))
            for name, source in files.items():
                with open(source, "rb") as f:
                    tar.addfile(_info(name, members[name]["size"]), f)
        if isinstance(sink, _EncryptingWriter):
            sink.finish()

    try:
        return write_private_file(path, pack)
    except FileExistsError:
        raise ArchiveError(f"{path} exists: a backup never overwrites a file; choose a new name") from None


def read(path, staging, passphrase=None, allowed=lambda name: True):
    """Unpack the archive at ``path`` into the folder ``staging`` (files of mode 600, named by
    :func:`staged_name`) and check every member against the manifest; returns the manifest.

    Nothing is written outside ``staging``; a member whose name ``allowed`` refuses, or that is
    not a regular file, stops the reading.
    """
    with open(path, "rb") as raw:
        encrypted = raw.read(len(MAGIC)) == MAGIC
        raw.seek(0)
        if encrypted and not passphrase:
            raise ArchiveError("the archive is encrypted: give its passphrase (--passphrase-file, or at the prompt)")
        source = io.BufferedReader(_DecryptingReader(raw, passphrase)) if encrypted else raw
        found, manifest = {}, None
        try:
            with tarfile.open(fileobj=source, mode="r|gz") as tar:
                for member in tar:
                    if not member.isfile() or (member.name != MANIFEST and not allowed(member.name)):
                        raise ArchiveError(f"the archive holds {member.name!r}, which no isvapp backup has")
                    handle = tar.extractfile(member)
                    assert handle is not None  # a regular file
                    if member.name == MANIFEST:
                        manifest = _manifest(handle.read(1024 * 1024))
                        continue
                    found[member.name] = _stage(handle, os.path.join(staging, staged_name(member.name)))
        except (tarfile.TarError, EOFError, OSError) as error:
            raise ArchiveError(f"the archive is damaged or not an isvapp backup ({error})") from None
    if manifest is None:
        raise ArchiveError("the archive has no manifest: it is not an isvapp backup")
    listed = manifest.get("members") or {}
    for name in sorted(set(listed) | set(found)):
        if name not in found:
            raise ArchiveError(f"the archive was changed: {name} is in its manifest but not in it")
        if name not in listed or found[name] != (listed[name].get("size"), listed[name].get("sha256")):
            raise ArchiveError(f"the archive was changed or damaged: {name} does not match its manifest")
    return manifest


def staged_name(member):
    """Where a member lands in the staging folder: one flat name (keys/X.pem is keys--X.pem)."""
    return member.replace("/", "--")


def _manifest(data):
    try:
        manifest = json.loads(data)
    except ValueError:
        raise ArchiveError("the archive's manifest is not JSON: it is not an isvapp backup") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError("the archive's manifest is not an isvapp backup's")
    if not isinstance(manifest.get("version"), int) or manifest["version"] > VERSION:
        raise ArchiveError(
            f"the archive is format version {manifest.get('version')}; this isvapp reads up to {VERSION}: upgrade it"
        )
    return manifest


def _stage(handle, target):
    sha, size = hashlib.sha256(), 0
    with os.fdopen(create_private(target), "wb") as out:
        while block := handle.read(CHUNK):
            sha.update(block)
            size += len(block)
            out.write(block)
    return size, sha.hexdigest()
