"""The study's cache of stages: each stage runs once per configuration and is skipped on a rerun.

Layout of a study folder ``OUT``::

    OUT/study.json                 which configuration (hash + settings) and key fingerprint made OUT
    OUT/study.log                  the log of every run (appended)
    OUT/stages/<name>/...          a stage's own files (arrays, JSON)
    OUT/stages/<name>/done.json    written atomically as the stage's last act: config hash, key
                                   fingerprint, seconds, and the stage's outputs (small JSON)

A stage counts as done when its ``done.json`` exists and names the current configuration hash and
key fingerprint. Stages run in a fixed order and each may read the files of the stages before it,
so once one stage runs again every later stage runs again too (:meth:`StageCache.run`).
:func:`claim` refuses an ``OUT`` made with another configuration or key unless ``force``.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from medcloak.errors import MedcloakError
from medcloak.io.atomic import atomic_write_text

__all__ = ["StageCache", "StageResult", "claim", "open_log", "close_log", "jsonable", "STUDY_JSON", "LOG_FILE",
           "DONE_JSON"]

STUDY_JSON = "study.json"
LOG_FILE = "study.log"
DONE_JSON = "done.json"
_LOGGER = "medcloak.study"

#: What ``--force`` removes from an OUT made with another configuration (never reader answers).
_FORCE_REMOVES = ("stages", "figures", "report.html", "metrics.json", "utility.csv", "attacks.csv",
                  "overhead.csv", "config.toml", "secret/model")


def jsonable(value):
    """``value`` with numpy scalars/arrays as Python numbers/lists and NaN/inf as None."""
    import math

    import numpy as np

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, Path):
        return str(value)
    return value


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def open_log(out: Path, *, echo: bool) -> logging.Logger:
    """The study logger: appends to ``OUT/study.log``; also echoes to stderr when ``echo``."""
    log = logging.getLogger(_LOGGER)
    log.setLevel(logging.INFO)
    log.propagate = False
    close_log(log)
    fh = logging.FileHandler(out / LOG_FILE, encoding="utf-8")
    fh.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(fh)
    if echo:
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(logging.Formatter("[study] %(message)s"))
        log.addHandler(sh)
    return log


def close_log(log: logging.Logger) -> None:
    """Detach and close the handlers :func:`open_log` added."""
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()


def claim(out: Path, *, config_doc: dict, config_hash: str, key_fingerprint: str, force: bool,
          log: logging.Logger) -> None:
    """Record (or check) which configuration and key own ``out``.

    Raises
    ------
    MedcloakError
        ``out`` holds a study of another configuration or key and ``force`` is False; or
        ``force`` would discard reader answers (``readers/answers.sqlite``).
    """
    path = out / STUDY_JSON
    doc = None
    if path.exists():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = {}
    if doc is not None:
        same_config = doc.get("config_hash") == config_hash
        same_key = doc.get("key_fingerprint") == key_fingerprint
        if same_config and same_key:
            return
        what = "configuration" if not same_config else "key"
        detail = (f"its config {doc.get('config', {}).get('name', '?')} (hash {str(doc.get('config_hash'))[:12]}) "
                  f"differs from this one (hash {config_hash[:12]})" if not same_config else
                  f"it was made under key {str(doc.get('key_fingerprint'))[:16]}, not {key_fingerprint[:16]}")
        if not force:
            raise MedcloakError(f"holds a study made with another {what}: {detail}; use another --out, "
                                f"or --force to discard its results", out)
        if (out / "readers" / "answers.sqlite").exists():
            raise MedcloakError("holds expert-reader answers (readers/answers.sqlite) for the old study; "
                                "move the readers folder away before --force", out)
        for rel in _FORCE_REMOVES:
            p = out / rel
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        log.info("--force: discarded the results of the previous %s (%s)", what, detail)
    atomic_write_text(path, json.dumps({"config_hash": config_hash, "key_fingerprint": key_fingerprint,
                                        "config": config_doc, "created": _now()}, indent=2) + "\n")


@dataclass
class StageResult:
    """One stage's record: ``outputs`` (its done.json payload), whether it was ``skipped``."""

    name: str
    outputs: dict
    skipped: bool
    seconds: float
    folder: Path


@dataclass
class StageCache:
    """Runs stages in order under ``OUT/stages``, skipping those already done for this config.

    Parameters
    ----------
    out : Path
        The study folder.
    config_hash, key_fingerprint : str
        Identity of this run; a stage is done only if its done.json names both.
    log : logging.Logger
    """

    out: Path
    config_hash: str
    key_fingerprint: str
    log: logging.Logger
    results: dict[str, StageResult] = field(default_factory=dict)
    _stale: bool = False

    def folder(self, name: str) -> Path:
        """``OUT/stages/<name>``."""
        return self.out / "stages" / name

    def done(self, name: str) -> dict | None:
        """The done.json of ``name`` if it belongs to this config and key, else None."""
        path = self.folder(name) / DONE_JSON
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if doc.get("config_hash") != self.config_hash or doc.get("key_fingerprint") != self.key_fingerprint:
            return None
        return doc

    def run(self, name: str, fn: Callable[[Path], dict], *, valid: Callable[[dict], bool] | None = None
            ) -> StageResult:
        """Run stage ``name`` unless it is done (and no earlier stage ran in this call).

        Parameters
        ----------
        name : str
        fn : callable
            ``fn(folder) -> outputs``: does the work, writes its files into ``folder`` (created
            empty) and returns a small JSON-serialisable dict.
        valid : callable, optional
            ``valid(done_doc) -> bool``: an extra check that a done stage is still current
            (e.g. an input file that may appear later).
        """
        doc = None if self._stale else self.done(name)
        if doc is not None and valid is not None and not valid(doc):
            self.log.info("stage %-10s done before, but its inputs changed: running again", name)
            doc = None
        if doc is not None:
            self.log.info("stage %-10s already done (config %s), skipped", name, self.config_hash[:12])
            res = StageResult(name, doc.get("outputs", {}), True, float(doc.get("seconds", 0.0)), self.folder(name))
            self.results[name] = res
            return res
        self._stale = True  # every later stage depends on this one's files
        folder = self.folder(name)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        self.log.info("stage %-10s running", name)
        t0 = time.perf_counter()
        outputs = fn(folder)
        seconds = time.perf_counter() - t0
        doc = {"stage": name, "config_hash": self.config_hash, "key_fingerprint": self.key_fingerprint,
               "finished": _now(), "seconds": round(seconds, 2), "outputs": jsonable(outputs)}
        atomic_write_text(folder / DONE_JSON, json.dumps(doc, indent=2, allow_nan=False) + "\n")
        self.log.info("stage %-10s done in %.1f s", name, seconds)
        res = StageResult(name, doc["outputs"], False, seconds, folder)
        self.results[name] = res
        return res
