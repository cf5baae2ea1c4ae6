"""Obfuscate an archive on a Ray cluster (Ray Data), with the bytes, manifest and resume of the local engine.

:func:`obfuscate_tree_ray` is :func:`medcloak.obfuscation.batch.obfuscate_tree` with a
:class:`RayEngine` plugged in as its ``engine``. Everything about *what* is written stays in
``obfuscate_tree``: the walk, the pseudonymous names, the input hashes, the skip-if-finished
check of a rerun, the manifest and names file (appended and fsynced by the driver, one line per
finished item). Only *where* each file is obfuscated changes:

* the driver turns the pending items into a Ray Dataset of rows ``(rel, stem, in_sha)`` — no
  key, no pixels — in windows of ``window`` files (the driver's memory stays bounded);
* ``Dataset.map_batches`` runs :class:`ObfuscateActor` on an actor pool of ``workers`` actors
  (one CPU each). Each actor reads the key from a **path** (``key_file``; the key file must be
  present on every node, mode 0600, like the model folder), checks its fingerprint and the
  model's against the driver's, loads the fitted scheme once
  (:func:`~medcloak.obfuscation.batch_worker.init_worker`: one torch thread) and obfuscates whole
  files with :func:`~medcloak.obfuscation.batch_worker.run_task` — the very function the local
  engine runs — reading ``IN`` and writing ``OUT`` on a filesystem every node shares;
* each actor runs in a ``runtime_env`` that pins the CPU instruction set
  (:mod:`medcloak.obfuscation.cpu_pin`, profile ``cpu_isa``) and refuses to start on a node
  whose torch does not run it; the profile is recorded in every manifest line (``cpu``).

So a frame's bytes depend only on the key, the model, the input and the pinned arithmetic,
never on the node, the actor or the batch it ran in.

Resume after a crash is the local engine's: outputs are written atomically by the actors, and
an item counts as finished only when the driver has appended its manifest line *and* its
outputs still hash to the recorded SHA-256. Killing the driver loses at most the items whose
results had not reached it (their outputs are rewritten, byte-identical, on the rerun);
a worker that raises stops the run with a :class:`~medcloak.errors.MedcloakError` once the
results already received are recorded; a worker process that dies is restarted by Ray and
its batch retried (Ray Data's defaults for actor pools: unlimited restarts and retries). Ray Data's own checkpointing is not used: the manifest
already is a per-item commit log that is checked against the files, and it works the same for
both engines.

``import ray`` happens only here, inside :class:`RayEngine`; ``import medcloak`` and the local
engine never import it. Without the ``scale`` extra, ``engine="ray"`` is a one-line error.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from medcloak.errors import MedcloakError
from medcloak.keys import Key
from medcloak.obfuscation.batch_worker import init_worker, run_task
from medcloak.obfuscation.cpu_pin import check_pinned, pin_environment, pin_record

__all__ = ["RayEngine", "ObfuscateActor", "obfuscate_tree_ray", "import_ray", "DEFAULT_CPU_ISA"]

#: The instruction set a Ray run pins by default: every x86-64 server CPU of the last decade has it.
DEFAULT_CPU_ISA = "avx2"


def import_ray():
    """``ray`` with Ray Data, or a one-line error naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MedcloakError("the Ray engine needs the 'scale' extra: pip install 'medcloak[scale]' "
                            "(ray[data])") from None
    return ray


class ObfuscateActor:
    """One Ray actor of the pool: holds the key (read from ``key_file``) and the fitted scheme.

    Constructed once per actor with paths and fingerprints only; called with batches of rows
    ``{"rel", "stem", "in_sha"}``; returns ``{"result": [json of run_task's result, ...]}``.
    """

    def __init__(self, key_file: str, key_fingerprint: str, model_dir: str | None, model_fingerprint: str,
                 in_root: str, out_root: str, fmt: str, scheme: str | None, spec_template,
                 cpu_isa: str | None, versions: dict | None = None) -> None:
        if cpu_isa is not None:
            check_pinned(cpu_isa)  # before any torch work: the runtime_env must have taken effect
        here = _versions()
        if versions is not None and here != versions:
            raise MedcloakError(f"this node runs {here}, the driver {versions}: install the same medcloak and "
                                "torch on every node (other versions may write other bytes)")
        key = Key.load(key_file)
        if key.fingerprint != key_fingerprint:
            raise MedcloakError(f"key file on this node has fingerprint {key.short_fingerprint}, not the "
                                f"driver's {key_fingerprint[:16]}", key_file)
        init_worker(key, model_dir, in_root, out_root, fmt, True, scheme)
        from medcloak.obfuscation.batch_worker import STATE

        got = STATE["obfuscator"].model_fingerprint
        if got != model_fingerprint:
            raise MedcloakError(f"model on this node has fingerprint {got[:16]}, not the driver's "
                                f"{model_fingerprint[:16]}", model_dir or "(no model)")
        self._key = None if spec_template.keep_names else key
        self._template = spec_template

    def _specs(self, batch: dict) -> list:
        return [(str(rel), replace(self._template, rel=str(rel), stem=str(stem), key=self._key), str(sha))
                for rel, stem, sha in zip(batch["rel"], batch["stem"], batch["in_sha"])]

    def __call__(self, batch: dict) -> dict:
        results = run_task(self._specs(batch))
        return {"result": np.array([json.dumps(r) for r in results], dtype=object)}


def _versions() -> dict:
    import torch

    from medcloak import __version__

    return {"medcloak": __version__, "torch": torch.__version__}


def _windows(tasks: Iterable[list], size: int) -> Iterator[list]:
    window: list = []
    for task in tasks:
        window.extend(task)
        if len(window) >= size:
            yield window
            window = []
    if window:
        yield window


def _ray_reason(exc: BaseException) -> str:
    """The worker's exception in a Ray error (``RuntimeError: ...``: the last such line of the
    remote traceback Ray puts in its message, Ray's own exceptions last), else its first line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = [ln.strip() for ln in text.splitlines()
             if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)(\(\w+\))?: ", ln)]
    user = [ln for ln in found if not ln.startswith("ray.")]
    if user or found:
        return (user or found)[-1]
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class RayEngine:
    """An ``engine`` for :func:`~medcloak.obfuscation.batch.obfuscate_tree` that runs on Ray Data.

    Parameters
    ----------
    key_file : path-like
        The key file, at this path on every node (actors read it there; the key never travels).
    key_fingerprint, model_fingerprint : str
        What every actor must find at ``key_file`` and ``model_dir``.
    address : str, optional
        A running cluster (``ray start --head`` prints it; ``"auto"`` finds the local one). None
        connects to ``RAY_ADDRESS`` if set, else starts a local cluster for this run.
    workers : int
        Actors in the pool (one CPU each).
    batch_size : int
        Files per ``map_batches`` call.
    cpu_isa : str or None
        Instruction-set profile of :mod:`medcloak.obfuscation.cpu_pin`; None pins nothing.
    window : int
        Files per Ray Dataset (the driver holds one window of rows; each window starts a pool).
    actor_cls : type
        The actor class (tests inject failures through a subclass).
    progress : bool
        Ray Data's progress logging (False: warnings only).
    """

    def __init__(self, *, key_file, key_fingerprint: str, model_fingerprint: str, address: str | None = None,
                 workers: int = 2, batch_size: int = 8, cpu_isa: str | None = DEFAULT_CPU_ISA,
                 window: int = 200_000, actor_cls: type = ObfuscateActor, progress: bool = True) -> None:
        if int(workers) < 1 or int(batch_size) < 1 or int(window) < 1:
            raise MedcloakError("workers, batch size and window must be >= 1")
        if cpu_isa is not None:
            pin_environment(cpu_isa)  # validates the profile name
        self.key_file = str(Path(os.path.abspath(key_file)))
        self.key_fingerprint, self.model_fingerprint = key_fingerprint, model_fingerprint
        self.address, self.workers, self.batch_size = address, int(workers), int(batch_size)
        self.cpu_isa, self.window, self.actor_cls = cpu_isa, int(window), actor_cls
        self.progress = bool(progress)

    def manifest_fields(self) -> dict:
        """Fields added to every manifest line: the engine and the pinned arithmetic."""
        return {"engine": "ray", "cpu": pin_record(self.cpu_isa)}

    def actor_args(self, args: tuple, spec_template) -> tuple:
        """The constructor arguments every actor gets: paths, fingerprints, the key-less spec."""
        _key, model_dir, in_root, out_root, fmt, _threads, scheme = args
        return (self.key_file, self.key_fingerprint, model_dir, self.model_fingerprint, in_root, out_root, fmt,
                scheme, spec_template, self.cpu_isa, _versions())

    def __call__(self, tasks: Iterable[list], args: tuple, record) -> None:
        ray = import_ray()
        started = False
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None and not os.environ.get("RAY_ADDRESS"):
                kwargs["num_cpus"] = self.workers
            ray.init(address=self.address, **kwargs)
            started = True
        if not self.progress:
            import logging

            ray.data.DataContext.get_current().enable_progress_bars = False
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        runtime_env = {"env_vars": pin_environment(self.cpu_isa)} if self.cpu_isa is not None else None
        try:
            for window in _windows(tasks, self.window):
                template = replace(window[0][1], rel="", stem="", key=None)  # only rel and stem vary
                rows = [{"rel": rel, "stem": spec.stem, "in_sha": sha} for rel, spec, sha in window]
                ds = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // self.batch_size)))
                out = ds.map_batches(self.actor_cls, fn_constructor_args=self.actor_args(args, template),
                                     batch_size=self.batch_size, batch_format="numpy",
                                     compute=ray.data.ActorPoolStrategy(size=min(self.workers, len(rows))),
                                     num_cpus=1, runtime_env=runtime_env, udf_modifying_row_count=False)
                try:
                    for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
                        for line in batch["result"]:
                            record(json.loads(line))
                except MedcloakError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a failed Ray run: say so in one line
                    raise MedcloakError(f"the Ray run stopped ({_ray_reason(exc)}); the items finished so far are "
                                        "recorded: rerun to resume") from None
        finally:
            if started:
                ray.shutdown()


def obfuscate_tree_ray(in_path, out_dir, *, key_file, model_dir=None, address: str | None = None, workers: int = 2,
                       batch_size: int = 8, cpu_isa: str | None = DEFAULT_CPU_ISA, window: int = 200_000,
                       actor_cls: type = ObfuscateActor, **kwargs):
    """:func:`~medcloak.obfuscation.batch.obfuscate_tree` on a Ray cluster (see the module docstring).

    ``key_file`` is a path (the driver reads it for names and fingerprints; every actor reads
    it at the same path); other keyword arguments are ``obfuscate_tree``'s. Returns its
    :class:`~medcloak.obfuscation.batch.BatchSummary`.
    """
    from medcloak.obfuscation.batch import obfuscate_tree
    from medcloak.obfuscation.batch_worker import make_batch_scheme

    import_ray()  # fail before any work when the extra is missing
    key = Key.load(key_file)
    model_dir = None if model_dir is None else str(Path(os.path.abspath(model_dir)))
    model_fp = make_batch_scheme(key, model_dir, kwargs.get("scheme")).model_fingerprint
    engine = RayEngine(key_file=key_file, key_fingerprint=key.fingerprint, model_fingerprint=model_fp,
                       address=address, workers=workers, batch_size=batch_size, cpu_isa=cpu_isa, window=window,
                       actor_cls=actor_cls, progress=kwargs.get("progress", True))
    in_path, out_dir = os.path.abspath(in_path), os.path.abspath(out_dir)  # actors may run in another cwd
    return obfuscate_tree(in_path, out_dir, key=key, model_dir=model_dir, workers=workers, batch_size=batch_size,
                          engine=engine, manifest_extra=engine.manifest_fields(), **kwargs)
