"""An acknowledged order survives power loss: each callback's write-ahead log is on disk before
it is answered. Where that fsync happens, and why there, is :func:`wal_to_sync`'s docstring.
"""
import os

from flask import current_app


def wal_to_sync():
    """The -wal file a durable write transaction syncs itself after its commit, or None when
    SQLite's own synchronous=FULL commit does it (PostgreSQL; SQLITE_SYNC_AFTER_COMMIT off).

    Why after: with FULL, the fsync runs inside COMMIT, while the write lock is held, and every
    other worker waits for this one's disk (measured, issue 17: a quarter of a worker's time). WAL
    frames are appended in order, so syncing the file once COMMIT has returned (and the lock is
    free) puts these frames, and every earlier transaction's, on disk before the caller answers.
    Nothing acts on the transaction before then: a later write transaction that reads it syncs
    the same file before it answers too, and only the moments between this commit and its fsync
    could show its rows to a read-only page. Recovery reads the log up to the last whole commit,
    so a later transaction cut short by a power cut cannot take this one with it.
    """
    lean = current_app.extensions.get("isvapp_lean")
    return lean and lean["wal"]


_synced_wal_inode = {}


def sync_file(path):
    """Sync ``path`` (a -wal file) to disk: its frames, and, the first time this process sees this
    file, its folder, so a log made since the last checkpoint is found after a power cut.

    fdatasync, as SQLite's own commit syncs the log on Linux: the data and what is needed to read
    it back (the size, when the log grew), without a journal commit for its modification time.

    A log that is not there has been checkpointed into the database (SQLite syncs that) and
    removed: there is nothing left to sync. An fsync that fails raises: the transaction is
    committed but may not be on disk, so it must not be acknowledged (the marketplace's retry
    then finds the stored answer, and syncs again).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        os.fdatasync(fd)
        inode = os.fstat(fd).st_ino
    finally:
        os.close(fd)
    if _synced_wal_inode.get(path) != inode:
        folder = os.open(os.path.dirname(path), os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        _synced_wal_inode[path] = inode
