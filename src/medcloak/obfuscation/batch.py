"""Obfuscate a whole archive safely: streaming, multi-process, resumable, with a manifest.

:func:`obfuscate_tree` walks ``IN`` recursively (:func:`medcloak.io.load.iter_inputs`), obfuscates
every file with one fitted :class:`~medcloak.obfuscation.scheme.Scheme` and mirrors the folder
layout under ``OUT``:

* ``IN`` is only ever opened read-only; every output is written atomically.
* Single-frame inputs give ``OUT/<rel>.<png|npy|dcm>``; multi-frame inputs give one file per
  frame (``name_f0003.png``) for PNG/NPY, and one multi-frame DICOM (a cine) for DICOM. When two
  inputs of one folder share a stem (``a.png``, ``a.npy``), their outputs are named ``a_png.*``,
  ``a_npy.*``.
* With a VAE model, frames are resized to the model's square ``image_size`` first, exactly as
  ``medcloak fit`` resizes training frames (:func:`medcloak.io.arrays.resize`); ``map-only``
  keeps the native size.
* ``OUT/manifest.jsonl`` gets one JSON line per finished item (appended and fsynced): input
  relpath and SHA-256, output relpaths and SHA-256s, key and model fingerprints, medcloak
  version, output format, ``status`` (``ok`` | ``error``) and the error message.
* Resume: a rerun skips every item whose latest record is ``ok``, whose input SHA-256 is
  unchanged and whose outputs exist with the recorded SHA-256; a partial last manifest line (a
  run killed mid-write) is dropped and leftover temporary files are removed. Outputs are
  computed per item and per frame (the VAE sees one frame at a time, one torch thread), so a
  resumed run ends with byte-identical outputs to an uninterrupted one, whatever ``workers``.
* An ``OUT`` whose manifest names another key, model or format is refused, as is a non-empty
  ``OUT`` without a manifest, or an ``OUT`` inside ``IN``.
* Bad inputs are recorded as ``error`` and the run goes on; :attr:`BatchSummary.ok` is True only
  if every item succeeded.

Memory stays bounded: items are handed to at most ``workers`` processes (``spawn``), each of
which loads the model once, in tasks of ``batch_size`` files, with at most two tasks per worker
in flight.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medcloak.errors import MedcloakError
from medcloak.keys import Key

__all__ = ["BatchSummary", "obfuscate_tree", "FORMATS", "MANIFEST_NAME", "read_batch_manifest"]

FORMATS = ("png", "npy", "dicom")
MANIFEST_NAME = "manifest.jsonl"
_EXT = {"png": ".png", "npy": ".npy", "dicom": ".dcm"}
_DESCRIPTION = "medcloak obfuscated"


@dataclass
class BatchSummary:
    """What a batch run did.

    Attributes
    ----------
    total, done, skipped, failed : int
        Items found, obfuscated now, skipped as already finished, failed.
    errors : list of (str, str)
        ``(input relpath, message)`` of every failed item.
    map_only : bool
        True when no VAE model was used.
    out, manifest : Path
        Output folder and its manifest.
    key_fingerprint, model_fingerprint : str
    """

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    map_only: bool = False
    out: Path | None = None
    manifest: Path | None = None
    key_fingerprint: str = ""
    model_fingerprint: str = ""

    @property
    def ok(self) -> bool:
        """True only if no item failed."""
        return self.failed == 0

    def line(self) -> str:
        """One-line summary: ``done N, skipped N, failed N (of N)``."""
        return f"done {self.done}, skipped {self.skipped}, failed {self.failed} (of {self.total} files)"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _one_line(exc: BaseException) -> str:
    msg = str(exc) if isinstance(exc, MedcloakError) else f"{type(exc).__name__}: {exc}"
    return " ".join(msg.split()) or type(exc).__name__


def read_batch_manifest(path: str | os.PathLike, *, repair: bool = False) -> list[dict]:
    """Records of a batch manifest (JSON Lines), in file order.

    A last line without its newline (a run killed while appending) is ignored; with
    ``repair=True`` it is cut off the file so that later appends start on a fresh line.
    """
    p = Path(path)
    if not p.exists():
        return []
    data = p.read_bytes()
    cut = data.rfind(b"\n") + 1
    if repair and cut != len(data):
        with open(p, "r+b") as fh:
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())
    records = []
    for lineno, raw in enumerate(data[:cut].splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            raise MedcloakError(f"line {lineno} is not valid JSON (the manifest is damaged)", p) from None
        if isinstance(rec, dict):
            records.append(rec)
    return records


# ------------------------------------------------------------------------------ workers

_STATE: dict = {}


def _init_worker(key: Key, model_dir: str | None, in_root: str, out_root: str, fmt: str, set_threads: bool,
                 scheme: str | None = None) -> None:
    """Load the scheme once per process (also used in-process when ``workers == 1``).

    With a network (the paper's VAE), torch runs on one thread (``set_threads``): results must
    not depend on the thread count. ``map-only`` never imports torch.
    """
    obf = _make_obfuscator(key, model_dir, scheme)
    if set_threads and obf.uses_torch:
        import torch

        torch.set_num_threads(1)
    _STATE.clear()
    _STATE.update(
        obfuscator=obf,
        in_root=Path(in_root),
        out_root=Path(out_root),
        fmt=fmt,
        uid_mapper=None,
    )
    if fmt == "dicom":
        from medcloak.io.deid import UIDMapper

        _STATE["uid_mapper"] = UIDMapper(key.derive("dicom-uid-salt", 16))


def _make_obfuscator(key: Key, model_dir: str | None, scheme: str | None = None):
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


def _output_names(out_stem: str, n_frames: int, fmt: str) -> list[str]:
    ext = _EXT[fmt]
    if fmt == "dicom" or n_frames == 1:
        return [out_stem + ext]
    width = max(4, len(str(n_frames - 1)))
    return [f"{out_stem}_f{i:0{width}d}{ext}" for i in range(n_frames)]


def _process(rel: str, out_stem: str) -> tuple[list[str], list[str], int]:
    """Obfuscate one input file; returns (output relpaths, their sha256, frame count)."""
    from medcloak.io.load import read_frames, sniff_format

    st = _STATE
    obf, fmt = st["obfuscator"], st["fmt"]
    src = st["in_root"] / rel
    frames = read_frames(src)
    if not frames:
        raise MedcloakError("no frames in file", src)
    stack = np.stack([f.pixels for f in frames]).astype(np.float32, copy=False)
    if obf.input_size is not None:
        stack = _resize(stack, obf.input_size)
    out = obf.apply(stack)
    names = _output_names(out_stem, out.shape[0], fmt)
    bits = obf.output_bits
    for i, name in enumerate(names):
        dst = st["out_root"] / name
        if fmt == "png":
            from medcloak.io.images import write_png

            write_png(dst, out[i], bits=bits)
        elif fmt == "npy":
            from medcloak.io.images import write_npy

            write_npy(dst, out[i])
        else:
            from medcloak.io.dicom import read_dicom_dataset, write_dicom

            source = read_dicom_dataset(src, force=True) if sniff_format(src) in ("dicom", "dicom-raw") else None
            write_dicom(dst, out, source=source, uid_mapper=st["uid_mapper"], description=_DESCRIPTION)
    return names, [_sha256_file(st["out_root"] / n) for n in names], int(out.shape[0])


def _run_task(task: list[tuple[str, str, str]]) -> list[dict]:
    """Process ``[(rel, out_stem, input_sha256), ...]``; never raises for a bad input."""
    results = []
    for rel, out_stem, in_sha in task:
        try:
            names, shas, n = _process(rel, out_stem)
            results.append({"input": rel, "input_sha256": in_sha, "frames": n, "outputs": names,
                            "output_sha256": shas, "status": "ok", "error": None})
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop the run
            results.append({"input": rel, "input_sha256": in_sha, "frames": 0, "outputs": [],
                            "output_sha256": [], "status": "error", "error": _one_line(exc)})
    return results


# ------------------------------------------------------------------------------ main process


def _check_folders(in_path: Path, out_dir: Path) -> Path:
    if not in_path.exists():
        raise MedcloakError("no such file or folder", in_path)
    in_root = in_path if in_path.is_dir() else in_path.parent
    ri, ro = in_path.resolve(), out_dir.resolve()
    if in_path.is_dir() and (ro == ri or ri in ro.parents):
        raise MedcloakError(f"the output folder must not be inside the input folder {in_path}", out_dir)
    if ro in ri.parents and in_path.is_dir():
        raise MedcloakError(f"the input folder must not be inside the output folder {out_dir}", in_path)
    if out_dir.exists() and not out_dir.is_dir():
        raise MedcloakError("output exists and is not a folder", out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).exists():
        raise MedcloakError(f"output folder is not empty and holds no {MANIFEST_NAME}; use a new folder", out_dir)
    return in_root


def _out_stems(rels: list[str]) -> dict[str, str]:
    """Output path stem of every input relpath (collisions of stems in one folder get the suffix)."""
    stems: dict[str, list[str]] = {}
    for rel in rels:
        p = Path(rel)
        stems.setdefault((p.parent / p.stem).as_posix(), []).append(rel)
    out = {}
    for stem, group in stems.items():
        for rel in group:
            suffix = Path(rel).suffix.lstrip(".").lower() or "noext"
            out[rel] = stem if len(group) == 1 else f"{stem}_{suffix}"
    return out


def _remove_stale_tmp(out_dir: Path) -> None:
    """Remove temporary files an interrupted atomic write left behind (``.<name>.<rand>.tmp``)."""
    for dirpath, _dirs, files in os.walk(out_dir):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                Path(dirpath, name).unlink(missing_ok=True)


def _finished(rec: dict | None, in_sha: str, out_dir: Path) -> bool:
    if not rec or rec.get("status") != "ok" or rec.get("input_sha256") != in_sha:
        return False
    outs, shas = rec.get("outputs") or [], rec.get("output_sha256") or []
    if not outs or len(outs) != len(shas):
        return False
    for name, sha in zip(outs, shas):
        p = out_dir / name
        if not p.is_file() or _sha256_file(p) != sha:
            return False
    return True


def obfuscate_tree(
    in_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    key: Key,
    model_dir: str | os.PathLike | None = None,
    workers: int = 1,
    fmt: str = "png",
    batch_size: int = 8,
    progress: bool = True,
    scheme: str | None = None,
) -> BatchSummary:
    """Obfuscate every image under ``in_path`` into ``out_dir`` (see the module docstring).

    Parameters
    ----------
    in_path : path-like
        Input folder (walked recursively) or a single file. Never modified.
    out_dir : path-like
        Output folder: new, empty, or the output of an earlier run with the same key, model and
        format (which is then resumed).
    key : Key
        The owner's key.
    model_dir : path-like, optional
        A model folder saved by :meth:`medcloak.obfuscation.scheme.Scheme.save` (or
        :meth:`Obfuscator.save`); without it ``scheme`` runs untrained (``paper``: only the keyed
        mapping, ``map-only``).
    workers : int
        Worker processes (``spawn``); 1 runs in this process.
    fmt : {"png", "npy", "dicom"}
        Output format. PNG is 8-bit when the output has at most 256 levels, else 16-bit.
    batch_size : int
        Files per task handed to a worker.
    progress : bool
        tqdm bar on stderr.
    scheme : str, optional
        The scheme's name; a model folder of another scheme is refused.

    Returns
    -------
    BatchSummary

    Raises
    ------
    MedcloakError
        For problems with the run as a whole (missing input, refused output folder, a manifest
        written under another key or model, a model of another key). Problems with single files
        are recorded, not raised.
    """
    from tqdm.auto import tqdm

    from medcloak import __version__
    from medcloak.io.load import iter_inputs

    if fmt not in FORMATS:
        raise MedcloakError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    workers, batch_size = int(workers), int(batch_size)
    if workers < 1 or batch_size < 1:
        raise MedcloakError("workers and batch size must be >= 1")
    in_path, out_dir = Path(in_path), Path(out_dir)
    in_root = _check_folders(in_path, out_dir)
    model_dir = None if model_dir is None else str(Path(model_dir))
    obf = _make_obfuscator(key, model_dir, scheme)  # validates the model and the key before any work
    if fmt != "npy" and not obf.output_in_unit_range:
        raise MedcloakError(f"scheme {obf.name} outputs real values; use --format npy")
    summary = BatchSummary(map_only=model_dir is None, out=out_dir, manifest=out_dir / MANIFEST_NAME,
                           key_fingerprint=key.fingerprint, model_fingerprint=obf.model_fingerprint)
    del obf

    manifest = out_dir / MANIFEST_NAME
    previous = read_batch_manifest(manifest, repair=True)
    mine = {"key": summary.key_fingerprint, "model": summary.model_fingerprint, "format": fmt}
    for rec in previous:
        theirs = {"key": rec.get("key_fingerprint"), "model": rec.get("model_fingerprint"), "format": rec.get("format")}
        differ = [name for name in mine if theirs[name] != mine[name]]
        if differ:
            def show(d: dict) -> str:
                return f"key {str(d['key'])[:16]}, model {str(d['model'])[:16]}, format {d['format']}"

            raise MedcloakError(
                f"holds outputs made with another {' and '.join(differ)} ({show(theirs)}); this run uses "
                f"{show(mine)}; write to a new output folder",
                manifest,
            )
    latest = {rec.get("input"): rec for rec in previous}
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(out_dir)

    if in_path.is_dir():
        rels = [p.relative_to(in_root).as_posix() for p in iter_inputs(in_path)]
    else:
        rels = [in_path.name]
    stems = _out_stems(rels)
    summary.total = len(rels)
    common = {"key_fingerprint": summary.key_fingerprint, "model_fingerprint": summary.model_fingerprint,
              "medcloak_version": __version__, "format": fmt}
    bar = tqdm(total=len(rels), unit="file", desc="obfuscate", file=sys.stderr, disable=not progress)

    def tasks() -> Iterator[list[tuple[str, str, str]]]:
        task: list[tuple[str, str, str]] = []
        for rel in rels:
            try:
                in_sha = _sha256_file(in_root / rel)
            except OSError as exc:
                record({"input": rel, "input_sha256": "", "frames": 0, "outputs": [], "output_sha256": [],
                        "status": "error", "error": f"{in_root / rel}: cannot read ({exc.strerror})"})
                continue
            if _finished(latest.get(rel), in_sha, out_dir):
                summary.skipped += 1
                bar.update(1)
                continue
            task.append((rel, stems[rel], in_sha))
            if len(task) >= batch_size:
                yield task
                task = []
        if task:
            yield task

    with open(manifest, "ab") as mf:

        def record(rec: dict) -> None:
            line = json.dumps({**rec, **common}, sort_keys=True) + "\n"
            mf.write(line.encode("utf-8"))
            mf.flush()
            os.fsync(mf.fileno())
            if rec["status"] == "ok":
                summary.done += 1
            else:
                summary.failed += 1
                summary.errors.append((rec["input"], rec["error"]))
            bar.update(1)

        args = (key, model_dir, str(in_root), str(out_dir), fmt, True, scheme)
        try:
            if workers == 1:
                _run_serial(tasks(), args, record)
            else:
                _run_parallel(tasks(), args, record, workers)
        finally:
            bar.close()
    return summary


def _run_serial(tasks, args, record) -> None:
    torch = threads = None
    if args[1] is not None:  # a model (the VAE): _init_worker sets one torch thread; restore it after
        import torch

        threads = torch.get_num_threads()
    saved = dict(_STATE)
    try:
        _init_worker(*args)
        for task in tasks:
            for rec in _run_task(task):
                record(rec)
    finally:
        if threads is not None:
            torch.set_num_threads(threads)
        _STATE.clear()
        _STATE.update(saved)


def _run_parallel(tasks, args, record, workers: int) -> None:
    """Run tasks on a ``spawn`` process pool, at most two tasks per worker in flight.

    A pool whose worker dies is replaced once it has finished work; a fresh pool that breaks
    before finishing any task (workers cannot start) stops the run with a MedcloakError.
    """
    ctx = multiprocessing.get_context("spawn")

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=args)

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
                    results = [{"input": rel, "input_sha256": sha, "frames": 0, "outputs": [], "output_sha256": [],
                                "status": "error", "error": "the worker process died while processing this file"}
                               for rel, _stem, sha in task]
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
            pending[pool.submit(_run_task, task)] = task
        drain(0)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
