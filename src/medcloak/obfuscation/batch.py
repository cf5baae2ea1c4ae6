"""Obfuscate a whole archive safely: streaming, multi-process, resumable, with a manifest.

:func:`obfuscate_tree` walks ``IN`` recursively (:func:`medcloak.io.load.iter_inputs`) and
obfuscates every file with one fitted :class:`~medcloak.obfuscation.scheme.Scheme` into ``OUT``,
the folder that goes to the cloud:

* **Names carry nothing of the input** (:mod:`medcloak.obfuscation.naming`). Frame ``i`` of input
  ``rel`` is written to ``OUT/<p[:2]>/<p>.<png|npy|dcm>`` with
  ``p = key.pseudonym("output-name", f"{rel}\\x00{i}")`` (16 hex characters, an HMAC under a key
  sub-key): a fixed-depth layout of 256 folders. A multi-frame input written as DICOM is one
  cine file named by its frame 0. Distinct inputs therefore never share an output name
  (``a.png`` / ``a.PNG``, ``b.png`` / ``b.npy`` / ``b_png.png``, a 3-frame ``v.npy`` beside
  ``v_f0001.png``); should two outputs still meet, both items are reported failed, never
  overwritten silently.
* **The map back stays at the hospital**: ``OUT.names.jsonl`` *beside* ``OUT`` (or ``names=``;
  never inside ``OUT``, mode 0600) gets one JSON line per item: item id, input relpath, input
  SHA-256, outputs with their frame index, status, and the full error text.
* ``OUT/manifest.jsonl`` (it travels with the outputs) gets one JSON line per finished item
  (appended and flushed at once; synced to disk every 64 lines or 2 s and at the end, after the
  item's outputs are durable): the item id ``key.pseudonym("input", rel)``, output relpaths and
  SHA-256s, frame count, key and model fingerprints, medcloak version, output format, naming,
  ``status`` (``ok`` | ``error``) and a pseudonymous error text (the input's path and name are
  replaced by the item id). No input path, no input hash.
* ``keep_names=True`` (``--keep-names``) restores the mirrored layout instead: ``OUT/<rel>.<ext>``,
  ``name_f0003.png`` per frame, ``a_png.*`` / ``a_npy.*`` for inputs of one folder sharing a stem,
  and a manifest with input paths and input SHA-256s (no names file). Those names reach the cloud.
* ``IN`` is only ever opened read-only; every output is written atomically. Anything but a
  regular file (FIFO, device) is refused before it is opened; a subfolder that cannot be listed
  is reported as a failed item and skipped. Pixel counts are checked from each header before
  decoding (:mod:`medcloak.io.limits`).
* A DICOM input with ``BurnedInAnnotation=YES`` is refused unless ``burned_in="mask"`` (a border
  and/or boxes of every input frame are blanked before obfuscation; DICOM outputs then say
  ``BurnedInAnnotation=NO``) or ``burned_in="allow"`` (processed with a warning; DICOM outputs
  keep ``YES``).
* With a VAE model, frames are resized to the model's square ``image_size`` first, exactly as
  ``medcloak fit`` resizes training frames (:func:`medcloak.io.arrays.resize`); ``map-only``
  keeps the native size.
* Resume: a rerun skips every item whose latest record is ``ok``, whose input SHA-256 (from the
  names file; from the manifest with ``keep_names``) is unchanged and whose outputs exist with
  the recorded SHA-256; a partial last line (a run killed mid-write) is dropped and leftover
  temporary files are removed. A fresh ``OUT`` (no manifest) starts a fresh names file. Outputs
  are computed per item and per frame (the VAE sees one frame at a time, one torch thread), so a
  resumed run ends with byte-identical outputs to an uninterrupted one, whatever ``workers``.
* Byte identity across versions: for the same key, model and inputs, the output **pixels** are
  those of earlier versions, and with ``png_encoding="compat"`` the **files** too (Pillow's
  defaults: zlib level 6, adaptive filters). New folders default to ``fast`` (zlib level 1, 8-bit
  storage of 16-bit outputs holding only 8-bit values: a 512 px map-only frame encodes 2.5x faster
  at the same size), recorded per manifest record (the manifest's SHA-256s are of file bytes, and a
  resumed run compares them, so a folder never mixes the two). PNG outputs go through integer
  look-ups (:meth:`Scheme.apply_codes`) and their hashes are taken of the bytes written;
  ``tests/test_batch_identity.py`` holds the ``compat`` files to those of the float path and the
  map's pixels, under both encodings, to hashes frozen before the fast path.
* An ``OUT`` whose manifest names another key, model, format, naming or PNG encoding is refused
  (:mod:`.batch_manifest`), as is a
  non-empty ``OUT`` without a manifest, or an ``OUT`` inside ``IN``. A manifest line that is not
  JSON stops the run unless ``repair_manifest=True`` drops it.
* Bad inputs are recorded as ``error`` and the run goes on; :attr:`BatchSummary.ok` is True only
  if every item succeeded. A full disk or a read-only output stops the run with one error.

Memory stays bounded: items are handed to ``workers`` processes (this one and ``workers - 1``
spawned ones), each of which loads the model once, in tasks of ``batch_size`` files (smaller ones
at the end, :func:`task_size`), with at most two tasks per spawned worker in flight.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from medcloak.errors import MedcloakError
from medcloak.keys import Key
from medcloak.obfuscation.batch_manifest import check_same_run, open_append, read_batch_manifest
from medcloak.obfuscation.batch_worker import make_batch_scheme, run_parallel, run_serial, sha256_file
from medcloak.obfuscation.naming import OutputSpec, default_names_path, item_id, keep_name_stems

__all__ = ["BatchSummary", "obfuscate_tree", "FORMATS", "MANIFEST_NAME", "BURNED_IN", "DEFAULT_PNG_ENCODING",
           "read_batch_manifest"]

FORMATS = ("png", "npy", "dicom")
MANIFEST_NAME = "manifest.jsonl"
BURNED_IN = ("refuse", "mask", "allow")
DEFAULT_PNG_ENCODING = "fast"  #: PNG outputs of new output folders (see medcloak.io.images.PNG_ENCODINGS)
SYNC_EVERY = 64  # manifest lines between two disk syncs (see ``append`` in obfuscate_tree)
SYNC_SECONDS = 2.0


def task_size(remaining: int, batch_size: int, workers: int) -> int:
    """Files in the next task when ``remaining`` files are left to hand out: ``batch_size``, then
    fewer towards the end of a run with more than one worker (guided self-scheduling: about a
    quarter of each worker's share of what is left), so that no process sits idle at the end while
    another still holds whole tasks. Traced on 2 cores, 2 workers, 1,000 map-only frames: this
    process waited 0.21 s of a 9.4 s run for the pool's last two tasks of 8 files, 0.02-0.04 s with
    this. The task size never changes an output, only which process makes it."""
    if workers <= 1:
        return batch_size
    return max(1, min(batch_size, -(-remaining // (4 * workers))))


@dataclass
class BatchSummary:
    """What a batch run did.

    Attributes
    ----------
    total, done, skipped, failed : int
        Items found, obfuscated now, skipped as already finished, failed.
    errors : list of (str, str)
        ``(input relpath, message)`` of every failed item (full text: for the hospital's terminal).
    warnings : list of (str, str)
        ``(input relpath, message)`` of items processed with a warning (burned-in annotation).
    map_only : bool
        True when no VAE model was used.
    out, manifest : Path
        Output folder and its manifest.
    names : Path or None
        The hospital-side names file (None with ``keep_names``).
    key_fingerprint, model_fingerprint : str
    png_encoding : str or None
        The PNG encoding of the outputs (``fast`` | ``compat``; None for other formats).
    vae_engine : str or None
        The VAE's inference engine (``fp32`` | ``bf16``, recorded in every manifest line), None
        without a VAE.
    """

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    map_only: bool = False
    out: Path | None = None
    manifest: Path | None = None
    names: Path | None = None
    fmt: str = ""
    key_fingerprint: str = ""
    model_fingerprint: str = ""
    png_encoding: str | None = None
    vae_engine: str | None = None

    @property
    def ok(self) -> bool:
        """True only if no item failed."""
        return self.failed == 0

    def line(self) -> str:
        """One-line summary: ``done N, skipped N, failed N (of N)``."""
        return f"done {self.done}, skipped {self.skipped}, failed {self.failed} (of {self.total} files)"


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


def _remove_stale_tmp(out_dir: Path) -> None:
    """Remove temporary files an interrupted atomic write left behind (``.<name>.<rand>.tmp``)."""
    for dirpath, _dirs, files in os.walk(out_dir):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                Path(dirpath, name).unlink(missing_ok=True)


def _finished(rec: dict | None, in_sha: str, out_dir: Path, names_rec: dict | None = None) -> bool:
    """True if ``rec`` (manifest) says ok for this input's SHA-256 and every output is intact.

    With pseudonymous names the input SHA-256 and the outputs are checked against the
    hospital-side ``names_rec``; with kept names against the manifest record itself.
    """
    if not rec or rec.get("status") != "ok":
        return False
    outs, shas = rec.get("outputs") or [], rec.get("output_sha256") or []
    if names_rec is not None:
        if names_rec.get("status") != "ok" or names_rec.get("input_sha256") != in_sha:
            return False
        if [o.get("output") for o in names_rec.get("outputs") or []] != list(outs):
            return False
    elif rec.get("input_sha256") != in_sha:
        return False
    if not outs or len(outs) != len(shas):
        return False
    for name, sha in zip(outs, shas):
        p = out_dir / name
        if not p.is_file() or sha256_file(p) != sha:
            return False
    return True


def _pseudonymous_text(text: str, *, item: str, rel: str, in_root: Path) -> str:
    """An error text with the input's path, relpath and file name replaced by its item id."""
    out = str(text)
    name = Path(rel).name
    for needle in sorted({str(in_root / rel), os.path.abspath(in_root / rel), rel, name,
                          os.path.abspath(in_root), str(in_root)}, key=len, reverse=True):
        if needle and len(needle) >= 3 and needle not in (".", "/"):
            out = out.replace(needle, f"<item {item}>")
    return out


def _parse_regions(regions) -> tuple:
    out = []
    for r in regions or ():
        if isinstance(r, str):
            parts = r.replace(" ", "").split(",")
        else:
            parts = list(r)
        try:
            x0, y0, x1, y1 = (int(v) for v in parts)
        except (TypeError, ValueError):
            raise MedcloakError(f"a mask region is x0,y0,x1,y1 in pixels, got {r!r}") from None
        if x1 <= x0 or y1 <= y0 or min(x0, y0) < 0:
            raise MedcloakError(f"a mask region needs 0 <= x0 < x1 and 0 <= y0 < y1, got {r!r}")
        out.append((x0, y0, x1, y1))
    return tuple(out)


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
    keep_names: bool = False,
    names: str | os.PathLike | None = None,
    limits=None,
    burned_in: str = "refuse",
    mask_border: float | None = None,
    mask_regions=(),
    repair_manifest: bool = False,
    engine=None,
    manifest_extra: dict | None = None,
    png_encoding: str | None = None,
) -> BatchSummary:
    """Obfuscate every image under ``in_path`` into ``out_dir`` (see the module docstring).

    Parameters
    ----------
    in_path : path-like
        Input folder (walked recursively) or a single file. Never modified.
    out_dir : path-like
        Output folder: new, empty, or the output of an earlier run with the same key, model,
        format and naming (which is then resumed).
    key : Key
        The owner's key.
    model_dir : path-like, optional
        A model folder saved by :meth:`medcloak.obfuscation.scheme.Scheme.save` (or
        :meth:`Obfuscator.save`); without it ``scheme`` runs untrained (``paper``: only the keyed
        mapping, ``map-only``).
    workers : int
        Processes that obfuscate: this one and ``workers - 1`` spawned ones (1: this process alone).
    fmt : {"png", "npy", "dicom", "auto"}
        Output format. PNG is 8-bit when the output has at most 256 levels, else 16-bit.
    batch_size : int
        Files per task handed to a worker (with ``workers > 1``, fewer towards the end: :func:`task_size`).
    progress : bool
        tqdm bar on stderr.
    scheme : str, optional
        The scheme's name; a model folder of another scheme is refused.
    keep_names : bool
        Mirror input folders and names (identifying) instead of pseudonyms.
    names : path-like, optional
        Hospital-side names file; default ``OUT.names.jsonl`` beside ``OUT``. Must not be inside
        ``OUT``. Unused with ``keep_names``.
    limits : medcloak.io.limits.Limits, optional
        Pixel limits per frame and per file, checked before decoding.
    burned_in : {"refuse", "mask", "allow"}
        What to do with a DICOM input that says ``BurnedInAnnotation=YES``.
    mask_border : float, optional
        With ``mask``: fraction of the shorter side blanked at each edge of every frame (default
        0.1, or 0 when ``mask_regions`` are given).
    mask_regions : sequence of (x0, y0, x1, y1) or "x0,y0,x1,y1"
        With ``mask``: pixel boxes (input coordinates, end exclusive) blanked in every frame.
    repair_manifest : bool
        Drop manifest (and names-file) lines that are not valid JSON instead of stopping.
    engine : callable, optional
        ``engine(tasks, args, record)`` runs the tasks (lists of ``(rel, spec, input_sha256)``)
        and calls ``record(result)`` for each item's :func:`~medcloak.obfuscation.batch_worker.run_task`
        result; ``args`` are :func:`~medcloak.obfuscation.batch_worker.init_worker`'s. Default: in
        this process (``workers == 1``) or a local process pool. The Ray engine
        (:mod:`medcloak.obfuscation.ray_engine`) plugs in here; naming, manifest and resume stay here.
    manifest_extra : dict, optional
        JSON fields added to every manifest record (the Ray engine records its CPU pinning).
    png_encoding : {"fast", "compat"}, optional
        How PNG outputs are encoded (:data:`medcloak.io.images.PNG_ENCODINGS`; the same pixels
        either way): ``fast`` (zlib level 1, lossless 8-bit storage where it fits) or ``compat``
        (Pillow's defaults: the bytes of medcloak before issue 17). Recorded in every manifest
        record (``"png"``; a record without it is ``compat``). Default: the encoding of the output
        folder being resumed, else :data:`DEFAULT_PNG_ENCODING`; an output folder written with the
        other encoding is refused, so one folder never mixes the two.

    Returns
    -------
    BatchSummary

    Raises
    ------
    MedcloakError
        For problems with the run as a whole (missing input, refused output folder, a manifest
        written under another key or model, a model of another key, an unwritable output, a
        full disk). Problems with single files are recorded, not raised.
    """
    from tqdm import tqdm  # not tqdm.auto: it imports asyncio, ~25 ms of the command's start-up

    from medcloak import __version__
    from medcloak.io.limits import check_regular_file, get_default_limits
    from medcloak.io.load import iter_inputs

    if fmt not in (*FORMATS, "auto"):
        raise MedcloakError(f"format must be one of {', '.join(FORMATS)} or auto, got {fmt!r}")
    from medcloak.io.images import PNG_ENCODINGS

    if png_encoding is not None and png_encoding not in PNG_ENCODINGS:
        raise MedcloakError(f"PNG encoding must be one of {', '.join(PNG_ENCODINGS)}, got {png_encoding!r}")
    if burned_in not in BURNED_IN:
        raise MedcloakError(f"burned-in must be one of {', '.join(BURNED_IN)}, got {burned_in!r}")
    workers, batch_size = int(workers), int(batch_size)
    if workers < 1 or batch_size < 1:
        raise MedcloakError("workers and batch size must be >= 1")
    regions = _parse_regions(mask_regions)
    border = float(mask_border if mask_border is not None else (0.0 if regions else 0.1))
    if not 0.0 <= border < 0.5:
        raise MedcloakError(f"the mask border is a fraction of the shorter side in [0, 0.5), got {border}")
    limits = limits or get_default_limits()
    in_path, out_dir = Path(in_path), Path(out_dir)
    in_root = _check_folders(in_path, out_dir)
    if in_path.exists() and not in_path.is_dir():
        check_regular_file(in_path)
    names_path = None
    if not keep_names:
        names_path = Path(names) if names is not None else default_names_path(out_dir)
        rn, ro = Path(os.path.abspath(names_path)), Path(os.path.abspath(out_dir))
        if ro in rn.parents or rn == ro:
            raise MedcloakError(f"the names file maps pseudonyms back to inputs and must stay at the hospital, "
                                f"outside the output folder {out_dir}", names_path)
    model_dir = None if model_dir is None else str(Path(model_dir))
    obf = make_batch_scheme(key, model_dir, scheme)  # validates the model and the key before any work
    if fmt == "auto":  # png for outputs in [0, 1]; npy for real-valued ones (noise, mixing)
        fmt = "png" if obf.output_in_unit_range else "npy"
    if fmt != "npy" and not obf.output_in_unit_range:
        raise MedcloakError(f"scheme {obf.name} outputs real values; use --format npy")
    summary = BatchSummary(map_only=model_dir is None, out=out_dir, manifest=out_dir / MANIFEST_NAME,
                           names=names_path, fmt=fmt, key_fingerprint=key.fingerprint,
                           model_fingerprint=obf.model_fingerprint,
                           vae_engine=getattr(obf.config, "engine", None) if obf.uses_torch else None)
    del obf

    naming = "kept" if keep_names else "pseudonym"
    manifest = out_dir / MANIFEST_NAME
    fresh = not manifest.exists()
    previous = read_batch_manifest(manifest, repair=True, drop_bad=repair_manifest)
    if png_encoding is None:  # resume with the folder's own encoding (legacy records: compat)
        png_encoding = next((rec.get("png", "compat") for rec in previous if rec.get("format") == "png"),
                            DEFAULT_PNG_ENCODING)
    summary.png_encoding = png_encoding if fmt == "png" else None
    check_same_run(previous, manifest, {"key": summary.key_fingerprint, "model": summary.model_fingerprint,
                                        "format": fmt, "naming": naming, "png": summary.png_encoding},
                   engine=summary.vae_engine)
    ident = (lambda rel: rel) if keep_names else (lambda rel: item_id(key, rel))
    rec_id = "input" if keep_names else "item"
    latest = {rec.get(rec_id): rec for rec in previous}
    names_latest: dict = {}
    if names_path is not None:
        if names_path.exists() and not names_path.is_file():
            raise MedcloakError("the names file path exists and is not a file", names_path)
        if fresh and names_path.exists():
            try:
                old = read_batch_manifest(names_path)
            except MedcloakError:
                old = [{}]
            if any("item" not in rec or "input" not in rec for rec in old):
                raise MedcloakError("exists and is not a medcloak names file; refusing to replace it (choose "
                                    "another --names)", names_path)
            try:
                names_path.unlink()  # a names file of an output folder that is gone
            except OSError as exc:
                raise MedcloakError(f"cannot replace the names file ({exc.strerror})", names_path) from None
        names_latest = {rec.get("item"): rec for rec in read_batch_manifest(names_path, repair=True,
                                                                              drop_bad=repair_manifest)}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MedcloakError(f"cannot create the output folder ({exc.strerror or type(exc).__name__})", out_dir) from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise MedcloakError("the output folder is not writable", out_dir)
    _remove_stale_tmp(out_dir)

    walk_errors: list[tuple[str, str, str]] = []
    if in_path.is_dir():
        rels = [p.relative_to(in_root).as_posix()
                for p in iter_inputs(in_path, on_error=lambda p, why: walk_errors.append(
                    (Path(p).relative_to(in_root).as_posix(), f"{p}: {why}", why)))]
    else:
        rels = [in_path.name]
    stems = keep_name_stems(rels) if keep_names else {}
    summary.total = len(rels) + len(walk_errors)
    common = {"key_fingerprint": summary.key_fingerprint, "model_fingerprint": summary.model_fingerprint,
              "medcloak_version": __version__, "format": fmt, "naming": naming,
              **({"png": summary.png_encoding} if summary.png_encoding else {}),
              **({"vae_engine": summary.vae_engine} if summary.vae_engine else {}), **(manifest_extra or {})}
    bar = tqdm(total=summary.total, unit="file", desc="obfuscate", file=sys.stderr, disable=not progress)

    # output name -> (item id, rel, input sha, "done" | "skipped" | "") of the item that holds it,
    # to catch any collision (rel is empty for an item of an earlier run not seen in this one)
    claimed: dict[str, tuple[str, str, str, str]] = {}
    for ident_, rec in latest.items():
        if rec.get("status") == "ok":
            for name in rec.get("outputs") or []:
                claimed[name] = (ident_, "", "", "")

    def spec_of(rel: str) -> OutputSpec:
        return OutputSpec(rel=rel, fmt=fmt, key=None if keep_names else key, stem=stems.get(rel, ""),
                          keep_names=keep_names, limits=limits, burned_in=burned_in, mask_border=border,
                          mask_regions=regions, png=summary.png_encoding or "compat")

    def error_result(rel: str, in_sha: str, full: str, reason: str) -> dict:
        return {"input": rel, "input_sha256": in_sha, "frames": 0, "outputs": [], "output_sha256": [],
                "status": "error", "error": full, "reason": reason, "warning": None}

    def tasks() -> Iterator[list[tuple[str, OutputSpec, str]]]:
        for rel, full, why in walk_errors:
            record(error_result(rel, "", full, why))
        task: list[tuple[str, OutputSpec, str]] = []
        size = task_size(len(rels), batch_size, workers)
        for i, rel in enumerate(rels):
            try:
                check_regular_file(in_root / rel)
                in_sha = sha256_file(in_root / rel)
            except MedcloakError as exc:
                record(error_result(rel, "", str(exc), exc.reason))
                continue
            except OSError as exc:
                why = f"cannot read ({exc.strerror})"
                record(error_result(rel, "", f"{in_root / rel}: {why}", why))
                continue
            if _finished(latest.get(ident(rel)), in_sha, out_dir, names_latest.get(ident(rel)) if not keep_names else None):
                summary.skipped += 1
                for name in latest[ident(rel)].get("outputs") or []:
                    claimed[name] = (ident(rel), rel, in_sha, "skipped")
                bar.update(1)
                continue
            task.append((rel, spec_of(rel), in_sha))
            if len(task) >= size:
                yield task
                task, size = [], task_size(len(rels) - i - 1, batch_size, workers)
        if task:
            yield task

    mf = open_append(manifest)
    nf = open_append(names_path, 0o600) if names_path is not None else None

    # Each line is flushed to the OS at once (a killed run loses nothing); the disk sync is batched,
    # every SYNC_EVERY records or SYNC_SECONDS and at the end: a line lost to a power cut only
    # means its item is redone (outputs are durable before their line is written, and a resumed
    # run checks every output's SHA-256), while an fsync per line cost 4-6 ms on a loaded machine.
    unsynced = {"n": 0, "since": time.monotonic()}

    def sync(force: bool = False) -> None:
        if not unsynced["n"] or not (force or unsynced["n"] >= SYNC_EVERY
                                     or time.monotonic() - unsynced["since"] >= SYNC_SECONDS):
            return
        for fh, path in ((mf, manifest), (nf, names_path)):
            if fh is not None:
                try:
                    os.fsync(fh.fileno())
                except OSError as exc:
                    raise MedcloakError(f"cannot write ({exc.strerror or type(exc).__name__}); the run stops",
                                        path) from None
        unsynced["n"], unsynced["since"] = 0, time.monotonic()

    def append(fh, obj: dict, path: Path) -> None:
        try:
            fh.write((json.dumps(obj, sort_keys=True) + "\n").encode("utf-8"))
            fh.flush()
        except OSError as exc:
            raise MedcloakError(f"cannot write ({exc.strerror or type(exc).__name__}); the run stops", path) from None
        if fh is mf:
            unsynced["n"] += 1
            sync()

    def write_record(res: dict) -> None:
        rel, ident_ = res["input"], ident(res["input"])
        if keep_names:
            rec = {k: res[k] for k in ("input", "input_sha256", "frames", "outputs", "output_sha256", "status", "error")}
            append(mf, {**rec, **common}, manifest)
            return
        if nf is not None:
            append(nf, {"item": ident_, "input": rel, "input_sha256": res["input_sha256"], "status": res["status"],
                        "outputs": [{"output": o, "frame": i} for i, o in enumerate(res["outputs"])],
                        "frames": res["frames"], "error": res["error"], "key_fingerprint": summary.key_fingerprint},
                   names_path)
        err = None
        if res["status"] != "ok":
            err = f"<item {ident_}>: " + _pseudonymous_text(res.get("reason") or res["error"], item=ident_, rel=rel,
                                                              in_root=in_root)
        append(mf, {"item": ident_, "frames": res["frames"], "outputs": res["outputs"],
                    "output_sha256": res["output_sha256"], "status": res["status"], "error": err, **common}, manifest)

    def record(res: dict) -> None:
        if res["status"] == "ok":
            rel, ident_, outs = res["input"], ident(res["input"]), list(res["outputs"])
            clash = [(n, claimed[n]) for n in res["outputs"] if n in claimed and claimed[n][0] != ident_]
            if clash:
                name, (other_id, other_rel, other_sha, counted) = clash[0]
                why = f"output name {name} is also the output of another input"
                res = error_result(rel, res["input_sha256"], f"{in_root / rel}: {why} ({other_rel or other_id}); "
                                   "both are marked failed", why)
                if other_rel:  # the other item's file was overwritten: it is not finished either
                    write_record(error_result(other_rel, other_sha, f"{in_root / other_rel}: {why} ({rel})", why))
                    summary.failed += 1
                    if counted == "done":
                        summary.done -= 1
                    elif counted == "skipped":
                        summary.skipped -= 1
                    summary.errors.append((other_rel, f"{in_root / other_rel}: {why} ({rel})"))
                for n in outs:
                    claimed.pop(n, None)
            else:
                for n in res["outputs"]:
                    claimed[n] = (ident_, rel, res["input_sha256"], "done")
        write_record(res)
        if res["status"] == "ok":
            summary.done += 1
            if res.get("warning"):
                summary.warnings.append((res["input"], f"{in_root / res['input']}: {res['warning']}"))
        else:
            summary.failed += 1
            summary.errors.append((res["input"], res["error"]))
        bar.update(1)

    args = (key, model_dir, str(in_root), str(out_dir), fmt, True, scheme)
    try:
        if engine is not None:
            engine(tasks(), args, record)
        elif workers == 1:
            run_serial(tasks(), args, record)
        else:
            run_parallel(tasks(), args, record, workers)
        sync(force=True)
    finally:
        bar.close()
        mf.close()
        if nf is not None:
            nf.close()
    return summary
