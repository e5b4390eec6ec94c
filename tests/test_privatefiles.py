"""The one way secrets and buyers' data reach a file (isvapp/privatefiles.py), and the one
throttle (isvapp/throttle.py)."""

import os
import stat
import threading

import pytest
from isvapp.privatefiles import create_private, write_private_file
from isvapp.throttle import Throttle, once


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_private_file_is_0600_and_never_made_through_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    os.symlink(victim, tmp_path / "planted")
    with pytest.raises(FileExistsError):
        create_private(tmp_path / "planted")
    os.close(create_private(tmp_path / "new"))
    assert victim.read_text() == "untouched" and mode(tmp_path / "new") == 0o600


def test_a_write_is_whole_first_writer_wins_and_replace_refuses_a_symlink(tmp_path):
    path = tmp_path / "key.pem"
    assert write_private_file(path, b"first") == 5 and path.read_bytes() == b"first" and mode(path) == 0o600
    with pytest.raises(FileExistsError):
        write_private_file(path, b"second")  # another worker's key already won
    assert path.read_bytes() == b"first"
    write_private_file(path, lambda f: f.write(b"replaced"), replace=True)
    assert path.read_bytes() == b"replaced" and mode(path) == 0o600
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    os.symlink(victim, tmp_path / "link.pem")
    with pytest.raises(IsADirectoryError):
        write_private_file(tmp_path / "link.pem", b"x", replace=True)
    with pytest.raises(FileExistsError):
        write_private_file(tmp_path / "link.pem", b"x")
    assert victim.read_text() == "untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem", "link.pem", "victim"]  # no temporary left


def test_a_failed_write_leaves_nothing(tmp_path):
    def broken(f):
        f.write(b"half")
        raise RuntimeError("the disk filled up")

    with pytest.raises(RuntimeError):
        write_private_file(tmp_path / "archive", broken)
    assert list(tmp_path.iterdir()) == []


def test_a_throttle_is_due_once_every_so_often_across_threads():
    throttle = Throttle(60)
    assert throttle.due(now=1000.0) and not throttle.due(now=1059.0) and throttle.due(now=1060.0)
    racing, results = Throttle(60), []
    threads = [threading.Thread(target=lambda: results.append(racing.due(now=5.0))) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    warned = once()
    assert warned.due(now=0.0) and not warned.due(now=10.0**9)
