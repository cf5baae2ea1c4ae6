"""The worker side of :func:`medcloak.obfuscation.batch.obfuscate_tree`: one process's scheme,
one input file at a time, and the serial / process-pool loops that feed it.

Each worker process loads the fitted scheme once (:func:`init_worker`), obfuscates whole files
(:func:`run_task`, never raising for a bad input) and hands results back to the main process,
which writes the manifest. A run stops (:class:`StopRun`) only for errors that doom every later
item too (disk full, read-only output).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from medcloak.errors import MedcloakError
from medcloak.keys import Key
from medcloak.obfuscation.naming import OutputSpec

__all__ = ["STATE", "StopRun", "init_worker", "make_batch_scheme", "run_task", "run_serial", "run_parallel",
           "sha256_file", "one_line"]

_DESCRIPTION = "medcloak obfuscated"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def one_line(exc: BaseException) -> str:
    msg = str(exc) if isinstance(exc, MedcloakError) else f"{type(exc).__name__}: {exc}"
    return " ".join(msg.split()) or type(exc).__name__


# ------------------------------------------------------------------------------ output files


class DurableWriter:
    """Atomic output files written and fsynced beside the computation of the next frames.

    :meth:`write` hands the bytes to a background thread that writes them with
    :func:`medcloak.io.atomic.atomic_write_bytes` (a temporary file ``.<name>.<rand>.tmp`` in the
    target folder, which a resumed run removes; ``fsync``; rename), so the caller goes on with the
    next frame while the disk works: an ``fsync`` cost 4-6 ms per file on a loaded 2-core machine,
    as much as decoding and mapping a 512 px frame, and creating the temporary file in the caller
    cost about 1 ms per file in the 256 px VAE run (inode allocation; on this machine's ext4, which
    has no journal, most of it was the kernel skipping the inodes of files deleted in the last
    60-300 s, see ``Legs._discard`` in ``benchmarks/obfuscate_e2e.py``). With one worker these
    threads and the kernel's write-back run on the otherwise idle core, noticeably so for the 1 MB
    ``.npy`` outputs (a 1-worker randenc run used 112 % of one core, pixelate 98-106 %), which two
    workers must share. PNG and ``.npy`` outputs go through it. :meth:`wait` returns once
    every file handed over is durable under its final name, and raises the first error; the worker
    calls it before it reports a file done, so a manifest record never names an output that is not
    on disk. The guarantee per file is that of :func:`~medcloak.io.atomic.atomic_write_bytes`
    (whole file or none, fsynced before the rename).
    """

    def __init__(self, threads: int = 2):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="medcloak-write")
        self._pending: list = []

    def write(self, path: Path, data: bytes, *, mode: int = 0o644) -> None:
        from medcloak.io.atomic import atomic_write_bytes

        self._pending.append(self._pool.submit(atomic_write_bytes, Path(path), data, mode=mode))

    def wait(self) -> None:
        """Block until every file is durable and renamed; raise the first error (a failed file
        leaves no temporary behind: :func:`~medcloak.io.atomic.atomic_write_bytes` removes it)."""
        pending, self._pending = self._pending, []
        first = None
        for fut in pending:
            try:
                fut.result()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the others finished
                first = first or exc
        if first is not None:
            raise first

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)

    def close_quietly(self) -> None:
        """Finish what is pending (errors were reported by :meth:`wait` or are moot) and stop."""
        try:
            self.wait()
        except BaseException:  # noqa: BLE001
            pass
        self._pool.shutdown(wait=True)


# ------------------------------------------------------------------------------ workers

STATE: dict = {}


def init_worker(key: Key, model_dir: str | None, in_root: str, out_root: str, fmt: str, set_threads: bool,
                 scheme: str | None = None) -> None:
    """Load the scheme once per process (also used in-process when ``workers == 1``).

    With ``set_threads``, torch (the paper's VAE) and numpy's BLAS (svd, randenc) run on one thread:
    results must not depend on the thread count, and workers must not oversubscribe the cores.
    ``map-only`` never imports torch.
    """
    from medcloak.obfuscation.alloc import keep_freed_memory

    keep_freed_memory()  # frame-sized buffers stay in the process (no page faults per frame); same bytes
    obf = make_batch_scheme(key, model_dir, scheme)
    blas = None
    if set_threads:
        if obf.uses_torch:
            import torch

            torch.set_num_threads(1)
        # numpy's BLAS too (svd, randenc): two workers with two BLAS threads each oversubscribed two cores
        # (2 workers ran at 0.6x of 1); measured byte-identical outputs with one BLAS thread
        from threadpoolctl import threadpool_limits

        blas = threadpool_limits(limits=1)
    STATE.clear()
    STATE.update(
        blas_limits=blas,
        obfuscator=obf,
        in_root=Path(in_root),
        out_root=Path(out_root),
        fmt=fmt,
        uid_mapper=None,
    )
    if fmt == "dicom":
        from medcloak.io.deid import UIDMapper

        STATE["uid_mapper"] = UIDMapper(key.derive("dicom-uid-salt", 16))


def make_batch_scheme(key: Key, model_dir: str | None, scheme: str | None = None):
    """The fitted scheme of ``model_dir`` (refused if it is not ``scheme``), or, without a model
    folder, ``scheme`` with its default config and nothing trained (``paper``: the map alone)."""
    from medcloak.obfuscation.scheme import load_scheme, make_scheme

    if model_dir is None:
        name = scheme or "paper"
        return make_scheme(name, {"order": "map-only"} if name == "paper" else None).fit(None, key)
    return load_scheme(model_dir, key, expect=scheme)


def _resize(stack: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize like :func:`medcloak.io.arrays.load_split` does for training (same preprocessing)."""
    if stack.shape[1:] == size:
        return stack
    from medcloak.io.arrays import resize

    return np.stack([resize(f, size) for f in stack])


def _burned_in(src: Path) -> str | None:
    """``BurnedInAnnotation`` of a DICOM input (upper case), None for other files."""
    from medcloak.io.load import sniff_format

    if sniff_format(src) not in ("dicom", "dicom-raw"):
        return None
    from medcloak.io.dicom import read_dicom_dataset

    ds = read_dicom_dataset(src, force=True)
    return str(ds.get("BurnedInAnnotation", "") or "").strip().upper()


def _mask(stack: np.ndarray, spec: OutputSpec) -> np.ndarray:
    """Blank (set to 0) the border and the boxes of every frame, in input pixel coordinates."""
    out = np.array(stack, dtype=np.float32, copy=True)
    h, w = out.shape[1:]
    b = int(round(float(spec.mask_border) * min(h, w)))
    if b > 0:
        out[:, :b, :] = 0
        out[:, h - b:, :] = 0
        out[:, :, :b] = 0
        out[:, :, w - b:] = 0
    for x0, y0, x1, y1 in spec.mask_regions:
        out[:, max(0, int(y0)):max(0, int(y1)), max(0, int(x0)):max(0, int(x1))] = 0
    return out


class StopRun(MedcloakError):
    """An environment error that dooms every later item too (disk full, read-only output)."""


_FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


@contextlib.contextmanager
def _stop_if_fatal():
    """Turn a write error that dooms every later item too (:data:`_FATAL_ERRNOS`) into
    :class:`StopRun`; other ``OSError`` exceptions pass through."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _FATAL_ERRNOS:
            raise StopRun(f"cannot write output ({exc.strerror}); the run stops", STATE["out_root"]) from None
        raise


def _write_files(names: list[str], datas) -> list[str]:
    """Hand each output's bytes to the task's :class:`DurableWriter` (or a writer of its own, closed
    before returning); the SHA-256s are those of the bytes handed over, not read back."""
    st = STATE
    shas = []
    writer = st.get("writer") or DurableWriter()
    with _stop_if_fatal():
        for name, data in zip(names, datas):
            writer.write(st["out_root"] / name, data)
            shas.append(hashlib.sha256(data).hexdigest())
        if "writer" not in st:
            writer.close()
    return shas


def _process(rel: str, spec: OutputSpec) -> tuple[list[str], list[str], int, str | None]:
    """Obfuscate one input file; returns (output relpaths, their sha256, frame count, warning)."""
    from medcloak.io.load import read_frames, sniff_format

    st = STATE
    obf, fmt = st["obfuscator"], st["fmt"]
    src = st["in_root"] / rel
    warning = None
    from medcloak.io.limits import check_regular_file

    check_regular_file(src)
    burned = _burned_in(src)
    if burned == "YES":
        if spec.burned_in == "refuse":
            raise MedcloakError("BurnedInAnnotation=YES: text burned into the pixels may identify the patient "
                                "and survives obfuscation; refused (use --burned-in mask to blank a border or "
                                "regions, or --burned-in allow)", src)
        if spec.burned_in == "allow":
            warning = "BurnedInAnnotation=YES: processed as asked (--burned-in allow); burned-in text may " \
                      "remain readable in the output" + ("; the DICOM output keeps BurnedInAnnotation=YES"
                                                         if fmt == "dicom" else "")
    frames = read_frames(src, limits=spec.limits)
    if not frames:
        raise MedcloakError("no frames in file", src)
    stack = np.stack([f.pixels for f in frames]).astype(np.float32, copy=False)
    if spec.burned_in == "mask":
        stack = _mask(stack, spec)
    if obf.input_size is not None:
        stack = _resize(stack, obf.input_size)
    bits = obf.output_bits
    if fmt == "png":  # the integers the PNG stores, straight from the scheme (same files, less work)
        from medcloak.io.images import png_bytes

        codes = obf.apply_codes(stack, bits=bits)
        names = spec.names(codes.shape[0])
        return names, _write_files(names, (png_bytes(c, bits=bits, encoding=spec.png) for c in codes)), \
            int(codes.shape[0]), warning
    out = obf.apply(stack)
    names = spec.names(out.shape[0])
    if fmt == "npy":  # the bytes write_npy writes, handed to the background writer like the PNGs
        from medcloak.io.images import npy_bytes

        return names, _write_files(names, (npy_bytes(f) for f in out)), int(out.shape[0]), warning
    # DICOM: written here, its dataset built from the source file's
    from medcloak.io.dicom import read_dicom_dataset, write_dicom

    with _stop_if_fatal():
        for name in names:
            source = read_dicom_dataset(src, force=True) if sniff_format(src) in ("dicom", "dicom-raw") else None
            if source is not None and burned == "YES" and spec.burned_in == "mask":
                source.BurnedInAnnotation = "NO"  # in memory only: the masked pixels are written
            write_dicom(st["out_root"] / name, out, source=source, uid_mapper=st["uid_mapper"],
                        description=_DESCRIPTION)
        return names, [sha256_file(st["out_root"] / n) for n in names], int(out.shape[0]), warning


def run_task(task: list[tuple[str, OutputSpec, str]]) -> list[dict]:
    """Process ``[(rel, spec, input_sha256), ...]``; never raises for a bad input.

    Each result holds the full error text (``error``, for the hospital) and the reason alone when
    the error is about the input file (``reason``, made pseudonymous by the main process).
    """
    results = []
    writer = STATE["writer"] = DurableWriter()  # fsyncs overlap the next frames; all done before we return
    try:
        for rel, spec, in_sha in task:
            try:
                names, shas, n, warning = _process(rel, spec)
                results.append({"input": rel, "input_sha256": in_sha, "frames": n, "outputs": names,
                                "output_sha256": shas, "status": "ok", "error": None, "warning": warning})
            except StopRun:
                raise
            except Exception as exc:  # noqa: BLE001 - a bad file must not stop the run
                reason = exc.reason if isinstance(exc, MedcloakError) else one_line(exc)
                results.append({"input": rel, "input_sha256": in_sha, "frames": 0, "outputs": [],
                                "output_sha256": [], "status": "error", "error": one_line(exc), "reason": reason})
        try:
            with _stop_if_fatal():
                writer.wait()
        except OSError as exc:
            why = f"cannot write output ({exc.strerror or type(exc).__name__})"
            return [r if r["status"] != "ok" else
                    {**r, "frames": 0, "outputs": [], "output_sha256": [], "status": "error",
                     "error": f"{STATE['in_root'] / r['input']}: {why}", "reason": why} for r in results]
    finally:
        STATE.pop("writer", None)
        writer.close_quietly()
    return results


def _init_pool_worker(*args) -> None:
    """:func:`init_worker` for a pool process, which also skips the interpreter's clean-up at exit.

    A pool worker holds nothing that needs it when it is told to stop (every task returned only
    after its files were durable, and results travel synchronously), while tearing down torch's
    modules kept ``pool.shutdown`` waiting 0.8 s per run. Registered last, the ``os._exit(0)`` runs
    first among the exit handlers; only pool processes get it (never the caller's process).
    """
    import atexit
    import os

    init_worker(*args)
    atexit.register(os._exit, 0)


class _InProcess:
    """This process as a worker: :func:`init_worker` on first use, the caller's torch threads, BLAS
    limits and ``STATE`` given back by :meth:`close`."""

    def __init__(self, args):
        self.args, self.ready, self.saved, self.threads = args, False, None, None

    def run(self, task, record) -> None:
        if not self.ready:
            if self.args[1] is not None:  # a model (the VAE): init_worker sets one torch thread; restore it after
                import torch

                self.threads = torch.get_num_threads()
            self.saved, self.ready = dict(STATE), True
            init_worker(*self.args)
        for rec in run_task(task):
            record(rec)

    def close(self) -> None:
        if not self.ready:
            return
        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        if STATE.get("blas_limits") is not None:  # in-process: give the caller its BLAS threads back
            STATE["blas_limits"].restore_original_limits()
        STATE.clear()
        STATE.update(self.saved)
        self.ready = False


def run_serial(tasks, args, record) -> None:
    here = _InProcess(args)
    try:
        for task in tasks:
            here.run(task, record)
    finally:
        here.close()


def run_parallel(tasks, args, record, workers: int) -> None:
    """Run tasks on ``workers`` processes: this one and a ``spawn`` pool of ``workers - 1``.

    The pool keeps at most two tasks per worker in flight; a task that finds it full runs here.
    This process works too (it only writes the manifest otherwise): with two workers on two cores
    the pool's start-up (a fresh interpreter importing torch, ~2 s) no longer sits alone on the
    critical path, and no core waits for the manifest writer.

    A pool whose worker dies is replaced once it has finished work; a fresh pool that breaks
    before finishing any task (workers cannot start) stops the run with a MedcloakError.
    """
    ctx = multiprocessing.get_context("spawn")
    here = _InProcess(args)
    size = workers - 1

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=size, mp_context=ctx, initializer=_init_pool_worker, initargs=args)

    pool = new_pool()
    pending: dict = {}
    state = {"finished": 0, "broken": False}

    def collect(fut) -> None:
        task = pending.pop(fut)
        try:
            results = fut.result()
            state["finished"] += 1
        except BrokenProcessPool:
            state["broken"] = True
            why = "the worker process died while processing this file"
            results = [{"input": rel, "input_sha256": sha, "frames": 0, "outputs": [], "output_sha256": [],
                        "status": "error", "error": why, "reason": why, "warning": None}
                       for rel, _spec, sha in task]
        for rec in results:
            record(rec)

    def drain(block_until: int) -> None:
        for fut in [f for f in pending if f.done()]:
            collect(fut)
        while len(pending) > block_until:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                collect(fut)

    try:
        for task in tasks:
            drain(2 * size)  # collect what is done, without waiting
            if state["broken"]:
                drain(0)
                pool.shutdown(wait=True, cancel_futures=True)
                if state["finished"] == 0:
                    raise MedcloakError(
                        "worker processes could not start (a script that calls obfuscate_tree with workers > 1 "
                        "must guard its entry point with: if __name__ == '__main__')"
                    )
                pool, state["broken"], state["finished"] = new_pool(), False, 0
            if len(pending) < 2 * size:
                pending[pool.submit(run_task, task)] = task
            else:
                here.run(task, record)
        drain(0)
    finally:
        try:
            pool.shutdown(wait=True, cancel_futures=True)
        finally:
            here.close()
