"""The manifest of an output folder: reading it (and repairing a damaged one), checking that a
resumed run is the same run, and opening it for appending. Used by
:func:`medcloak.obfuscation.batch.obfuscate_tree`, which writes the records.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from medcloak.errors import MedcloakError

__all__ = ["read_batch_manifest", "check_same_run", "open_append"]


def read_batch_manifest(path: str | os.PathLike, *, repair: bool = False, drop_bad: bool = False) -> list[dict]:
    """Records of a batch manifest (JSON Lines), in file order.

    A last line without its newline (a run killed while appending) is ignored; with
    ``repair=True`` it is cut off the file so that later appends start on a fresh line. A line
    that is not a JSON object is an error naming the line, unless ``drop_bad=True``: the file is
    then rewritten atomically without it (``medcloak obfuscate --repair-manifest``).
    """
    p = Path(path)
    if not p.exists():
        return []
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise MedcloakError(f"cannot read the manifest ({exc.strerror or type(exc).__name__})", p) from None
    cut = data.rfind(b"\n") + 1
    records, kept, bad = [], [], []
    for lineno, raw in enumerate(data[:cut].splitlines(keepends=True), start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            rec = None
        if not isinstance(rec, dict):
            bad.append(lineno)
            continue
        records.append(rec)
        kept.append(raw)
    if bad and not drop_bad:
        shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
        raise MedcloakError(f"line {shown} is not a valid JSON record (the manifest is damaged); rerun with "
                            "--repair-manifest to drop the bad line(s) (their items are redone)", p)
    try:
        if bad:
            from medcloak.io.atomic import atomic_write_bytes

            atomic_write_bytes(p, b"".join(kept), mode=p.stat().st_mode & 0o777)
        elif repair and cut != len(data):
            with open(p, "r+b") as fh:
                fh.truncate(cut)
                fh.flush()
                os.fsync(fh.fileno())
    except OSError as exc:
        raise MedcloakError(f"cannot repair the manifest ({exc.strerror or type(exc).__name__})", p) from None
    return records


def check_same_run(previous: list[dict], manifest: Path, mine: dict, *, engine: str | None = None) -> None:
    """Refuse to resume a folder whose records were made with another key, model, format, naming or
    PNG encoding (``mine``: ``{"key", "model", "format", "naming", "png"}``; ``png`` is None for other
    formats, and a PNG record without ``"png"`` was written with ``compat``). ``engine``, the VAE's
    inference engine, is part of the model fingerprint and only shown in the message."""
    for rec in previous:
        theirs = {"key": rec.get("key_fingerprint"), "model": rec.get("model_fingerprint"), "format": rec.get("format"),
                  "naming": rec.get("naming", "kept"),
                  "png": rec.get("png", "compat") if rec.get("format") == "png" else None}
        differ = [name for name in mine if theirs[name] != mine[name]]
        if differ:
            def show(d: dict, eng: str | None) -> str:
                return f"key {str(d['key'])[:16]}, model {str(d['model'])[:16]}" + \
                       (f" (VAE engine {eng})" if eng else "") + f", format {d['format']}, " \
                       f"naming {d['naming']}" + (f", PNG encoding {d['png']}" if d["png"] else "")

            hint = " (--keep-names must match the earlier run)" if "naming" in differ else (
                " (or pass --png to match it)" if differ == ["png"] else "")
            raise MedcloakError(
                f"holds outputs made with another {' and '.join(d if d != 'png' else 'PNG encoding' for d in differ)} "
                f"({show(theirs, rec.get('vae_engine'))}); this run uses {show(mine, engine)}; "
                f"write to a new output folder{hint}",
                manifest,
            )


def open_append(path: Path, mode: int = 0o644):
    """Open a JSON Lines file for appending (created with ``mode``); one-line error if impossible."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
        return os.fdopen(fd, "ab")
    except OSError as exc:
        raise MedcloakError(f"cannot write ({exc.strerror or type(exc).__name__})", path) from None
