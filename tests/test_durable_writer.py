"""The batch's output writer: a file appears under its name only whole and fsynced."""

import errno
import os

import pytest

from medcloak.obfuscation.batch_worker import DurableWriter


def test_files_appear_only_after_wait_whole_and_in_subfolders(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    w = DurableWriter()
    w.write(tmp_path / "a.png", b"A" * 100_000)
    w.write(tmp_path / "sub" / "b.png", b"B")
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "sub" / "b.png").exists()
    assert len(list(tmp_path.rglob(".*.tmp"))) == 2
    w.wait()
    assert (tmp_path / "a.png").read_bytes() == b"A" * 100_000 and (tmp_path / "sub" / "b.png").read_bytes() == b"B"
    assert len(synced) == 2 and not list(tmp_path.rglob(".*.tmp"))
    w.wait()  # nothing pending: nothing to do
    assert len(synced) == 2


def test_a_failed_fsync_is_raised_after_the_others_are_durable_and_leaves_no_temporary(tmp_path, monkeypatch):
    real, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    w = DurableWriter()
    for name in ("a", "b", "c"):
        w.write(tmp_path / name, name.encode())
    with pytest.raises(OSError, match="Input/output error"):
        w.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "c"]  # b never appears, no temporary left


def test_open_files_are_bounded(tmp_path):
    w = DurableWriter()
    n = DurableWriter.MAX_OPEN + 5
    for i in range(n):
        w.write(tmp_path / f"f{i}", b"x")
    assert len(list(tmp_path.glob("f*"))) == DurableWriter.MAX_OPEN  # the first batch was made durable early
    w.close()
    assert len(list(tmp_path.glob("f*"))) == n and not list(tmp_path.glob(".*.tmp"))
