"""The worker side of :func:`medcloak.obfuscation.batch.obfuscate_tree`: one process's scheme,
one input file at a time, and the serial / process-pool loops that feed it.

Each worker process loads the fitted scheme once (:func:`init_worker`), obfuscates whole files
(:func:`run_task`, never raising for a bad input) and hands results back to the main process,
which writes the manifest. A run stops (:class:`StopRun`) only for errors that doom every later
item too (disk full, read-only output).
"""

from __future__ import annotations

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


# ------------------------------------------------------------------------------ workers

STATE: dict = {}


def init_worker(key: Key, model_dir: str | None, in_root: str, out_root: str, fmt: str, set_threads: bool,
                 scheme: str | None = None) -> None:
    """Load the scheme once per process (also used in-process when ``workers == 1``).

    With a network (the paper's VAE), torch runs on one thread (``set_threads``): results must
    not depend on the thread count. ``map-only`` never imports torch.
    """
    obf = make_batch_scheme(key, model_dir, scheme)
    if set_threads and obf.uses_torch:
        import torch

        torch.set_num_threads(1)
    STATE.clear()
    STATE.update(
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
        from medcloak.io.atomic import atomic_write_bytes
        from medcloak.io.images import png_bytes

        codes = obf.apply_codes(stack, bits=bits)
        names = spec.names(codes.shape[0])
        shas = []
        try:
            for i, name in enumerate(names):
                data = png_bytes(codes[i], bits=bits)
                atomic_write_bytes(st["out_root"] / name, data)
                shas.append(hashlib.sha256(data).hexdigest())  # the bytes just written, not read back
        except OSError as exc:
            if exc.errno in _FATAL_ERRNOS:
                raise StopRun(f"cannot write output ({exc.strerror}); the run stops", st["out_root"]) from None
            raise
        return names, shas, int(codes.shape[0]), warning
    out = obf.apply(stack)
    names = spec.names(out.shape[0])
    try:
        for i, name in enumerate(names):
            dst = st["out_root"] / name
            if fmt == "npy":
                from medcloak.io.images import write_npy

                write_npy(dst, out[i])
            else:
                from medcloak.io.dicom import read_dicom_dataset, write_dicom

                source = read_dicom_dataset(src, force=True) if sniff_format(src) in ("dicom", "dicom-raw") else None
                if source is not None and burned == "YES" and spec.burned_in == "mask":
                    source.BurnedInAnnotation = "NO"  # in memory only: the masked pixels are written
                write_dicom(dst, out, source=source, uid_mapper=st["uid_mapper"], description=_DESCRIPTION)
        return names, [sha256_file(st["out_root"] / n) for n in names], int(out.shape[0]), warning
    except OSError as exc:
        if exc.errno in _FATAL_ERRNOS:
            raise StopRun(f"cannot write output ({exc.strerror}); the run stops", st["out_root"]) from None
        raise


def run_task(task: list[tuple[str, OutputSpec, str]]) -> list[dict]:
    """Process ``[(rel, spec, input_sha256), ...]``; never raises for a bad input.

    Each result holds the full error text (``error``, for the hospital) and the reason alone when
    the error is about the input file (``reason``, made pseudonymous by the main process).
    """
    results = []
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
    return results


def run_serial(tasks, args, record) -> None:
    torch = threads = None
    if args[1] is not None:  # a model (the VAE): init_worker sets one torch thread; restore it after
        import torch

        threads = torch.get_num_threads()
    saved = dict(STATE)
    try:
        init_worker(*args)
        for task in tasks:
            for rec in run_task(task):
                record(rec)
    finally:
        if threads is not None:
            torch.set_num_threads(threads)
        STATE.clear()
        STATE.update(saved)


def run_parallel(tasks, args, record, workers: int) -> None:
    """Run tasks on a ``spawn`` process pool, at most two tasks per worker in flight.

    A pool whose worker dies is replaced once it has finished work; a fresh pool that breaks
    before finishing any task (workers cannot start) stops the run with a MedcloakError.
    """
    ctx = multiprocessing.get_context("spawn")

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_worker, initargs=args)

    pool = new_pool()
    pending: dict = {}
    state = {"finished": 0, "broken": False}

    def drain(block_until: int) -> None:
        while len(pending) > block_until:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
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

    try:
        for task in tasks:
            drain(2 * workers - 1)
            if state["broken"]:
                drain(0)
                pool.shutdown(wait=True, cancel_futures=True)
                if state["finished"] == 0:
                    raise MedcloakError(
                        "worker processes could not start (a script that calls obfuscate_tree with workers > 1 "
                        "must guard its entry point with: if __name__ == '__main__')"
                    )
                pool, state["broken"], state["finished"] = new_pool(), False, 0
            pending[pool.submit(run_task, task)] = task
        drain(0)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
