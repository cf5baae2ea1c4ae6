"""Atomic writes (medcloak.io.atomic): whole file or none, the same bytes with or without O_DIRECT."""

import errno
import fcntl
import os

import pytest

from medcloak.io import atomic

pytestmark = pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="O_DIRECT is Linux-only")

SIZES = [0, 1, 4095, 4096, atomic.DIRECT_MIN_BYTES - 1, atomic.DIRECT_MIN_BYTES, atomic.DIRECT_MIN_BYTES + 1,
         1 << 20, (1 << 20) + 4096, 3 * (1 << 20) + 7]


@pytest.fixture(autouse=True)
def _fresh_refusals(monkeypatch):
    monkeypatch.setattr(atomic, "_REFUSED", set())
    monkeypatch.delenv("MEDCLOAK_DIRECT_IO", raising=False)


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def _needs_direct(folder):
    atomic.atomic_write_bytes(folder / "probe", os.urandom(1 << 20))
    (folder / "probe").unlink()
    if os.stat(folder).st_dev in atomic._REFUSED:
        pytest.skip("this file system refuses O_DIRECT (the fallback has its own test)")


@pytest.mark.parametrize("size", SIZES)
def test_same_bytes_for_every_size(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "sub" / "out.npy"
    atomic.atomic_write_bytes(path, data, mode=0o600)
    assert path.read_bytes() == data
    assert (path.stat().st_mode & 0o777) == 0o600
    assert _leftovers(path.parent) == []


def test_large_file_goes_through_o_direct(tmp_path, monkeypatch):
    _needs_direct(tmp_path)
    seen = []
    real = fcntl.fcntl

    def spy(fd, cmd, arg=0):
        if cmd == fcntl.F_SETFL:
            seen.append(bool(arg & os.O_DIRECT))
        return real(fd, cmd, arg)

    monkeypatch.setattr(fcntl, "fcntl", spy)
    data = os.urandom((1 << 20) + 100)
    atomic.atomic_write_bytes(tmp_path / "big", data)
    assert seen == [True, False]  # switched on for the aligned bulk, off again for the tail
    assert (tmp_path / "big").read_bytes() == data
    seen.clear()
    atomic.atomic_write_bytes(tmp_path / "small", os.urandom(atomic.DIRECT_MIN_BYTES - 1))
    monkeypatch.setenv("MEDCLOAK_DIRECT_IO", "0")
    atomic.atomic_write_bytes(tmp_path / "off", data)
    assert seen == []  # small files and MEDCLOAK_DIRECT_IO=0 use the page cache alone
    assert (tmp_path / "off").read_bytes() == data


def test_file_system_that_refuses_o_direct_gets_the_ordinary_write(tmp_path, monkeypatch):
    real = fcntl.fcntl
    calls = []

    def refuse(fd, cmd, arg=0):
        if cmd == fcntl.F_SETFL and arg & os.O_DIRECT:
            calls.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, cmd, arg)

    monkeypatch.setattr(fcntl, "fcntl", refuse)
    data = os.urandom(1 << 20)
    for name in ("a", "b"):
        atomic.atomic_write_bytes(tmp_path / name, data)
        assert (tmp_path / name).read_bytes() == data
    assert len(calls) == 1  # the refusal is remembered for the device
    assert os.stat(tmp_path).st_dev in atomic._REFUSED


def test_alignment_refused_mid_write_starts_over_buffered(tmp_path, monkeypatch):
    _needs_direct(tmp_path)
    real_write = os.write
    state = {"direct_writes": 0}

    def picky(fd, data):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            state["direct_writes"] += 1
            if state["direct_writes"] == 2:  # the first chunk went through, then the device says no
                raise OSError(errno.EINVAL, "Invalid argument")
            return real_write(fd, memoryview(data)[:8192])
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", picky)
    data = os.urandom((1 << 20) + 3)
    atomic.atomic_write_bytes(tmp_path / "x", data)
    assert state["direct_writes"] == 2
    assert os.stat(tmp_path).st_dev in atomic._REFUSED
    assert (tmp_path / "x").read_bytes() == data  # truncated and rewritten, not appended
    assert _leftovers(tmp_path) == []


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path, monkeypatch):
    _needs_direct(tmp_path)
    real_write = os.write

    def full(fd, data):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    (tmp_path / "keep").write_bytes(b"old")
    with pytest.raises(OSError) as info:
        atomic.atomic_write_bytes(tmp_path / "keep", os.urandom(1 << 20))
    assert info.value.errno == errno.ENOSPC
    assert (tmp_path / "keep").read_bytes() == b"old"  # the earlier file is untouched
    assert _leftovers(tmp_path) == []
