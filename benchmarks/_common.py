"""Shared helpers of the overhead benchmarks (``run_all.py`` and the scripts it runs).

Not part of the library: machine description, wall-clock timing, the synthetic input frames
and the small fitted obfuscators every benchmark uses.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

__all__ = [
    "machine",
    "now",
    "Timer",
    "input_frames",
    "fitted_obfuscator",
    "at_size",
    "write_json",
    "print_rows",
    "BENCH_KEY",
]

#: Fixed benchmark key material (not a secret: the benchmark only measures time).
BENCH_KEY = b"medcloak-benchmark-key-000000000"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """Where the numbers come from: CPU model (``/proc/cpuinfo``), cores, torch, threads, GPU."""
    import torch

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        load = None
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "load_average_1_5_15min": load,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "cuda_available": bool(torch.cuda.is_available()),
        "platform": platform.platform(),
    }


def now() -> str:
    """UTC time stamp, ISO 8601, seconds."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


class Timer:
    """Accumulating wall-clock timer: ``with t("stage"): ...``; ``t.ms(stage, n)`` per item."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}
        self._name = ""
        self._t0 = 0.0

    def __call__(self, name: str) -> "Timer":
        self._name = name
        return self

    def __enter__(self) -> "Timer":
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.total[self._name] = self.total.get(self._name, 0.0) + time.perf_counter() - self._t0

    def ms(self, name: str, n: int) -> float:
        """Milliseconds per item of stage ``name`` over ``n`` items."""
        return 1e3 * self.total.get(name, 0.0) / max(n, 1)


def input_frames(n_unique: int, size: int, *, seed: int = 0) -> tuple[np.ndarray, str]:
    """``n_unique`` semi-synthetic angiography frames (float32, (n, size, size), [0, 1]).

    Returns the frames and where they come from. Uses :func:`medcloak.synth.generate`; if the
    generator fails (it is being worked on), falls back to a procedural stand-in (smooth
    background with dark curved lines and noise) and says so.
    """
    try:
        from medcloak.synth import generate

        return generate(max(2, n_unique), size=size, seed=seed).frames[:n_unique], "medcloak.synth.generate"
    except Exception as exc:  # noqa: BLE001 - a benchmark must still run; the source is reported
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:size, 0:size] / float(size)
        out = np.empty((n_unique, size, size), np.float32)
        for i in range(n_unique):
            bg = 0.55 + 0.2 * np.sin(2.0 * xx + rng.random() * 3) * np.cos(1.5 * yy + rng.random() * 3)
            for _ in range(6):
                a, b, c = rng.random(3)
                d = np.abs(yy - (a + 0.3 * np.sin(6 * xx * b + c)))
                bg = bg - 0.35 * np.exp(-((d * size / (1.5 + 3 * b)) ** 2))
            out[i] = np.clip(bg + 0.03 * rng.standard_normal((size, size)), 0, 1)
        return out, f"procedural stand-in (medcloak.synth.generate failed: {type(exc).__name__})"


def shifted_pngs(folder: Path, n: int, *, seed: int = 0) -> tuple[list[Path], str]:
    """``n`` 8-bit 512x512 PNGs written with Pillow: 8 unique frames of :func:`input_frames`, each
    file shifted 3 px further so no two are alike (the inputs of ``obfuscate_e2e.py`` and
    ``scaling_ceiling.py``)."""
    from PIL import Image

    unique, source = input_frames(8, 512, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    codes = np.rint(np.clip(unique, 0, 1) * 255).astype(np.uint8)
    paths = []
    for i in range(n):
        p = folder / f"frame{i:05d}.png"
        Image.fromarray(np.roll(codes[i % 8], 3 * (i // 8), axis=1)).save(p)
        paths.append(p)
    return paths, source


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def fitted_obfuscator(frames: np.ndarray, *, epochs: int = 5, seed: int = 0):
    """An :class:`~medcloak.obfuscation.pipeline.Obfuscator` with the default VAE architecture
    (:class:`~medcloak.obfuscation.vae.VAEConfig`), fitted briefly on ``frames`` (N, S, S).

    Inference time does not depend on the weights, but the cost of writing the output does:
    PNG encoding of a nearly constant frame is cheap. Measured on 256 px frames, a VAE fitted
    for 2 epochs on 8 frames gave 1 kB obfuscated PNGs (flattering the obfuscation), one
    fitted for 5 epochs on 64 frames gave 53 kB (plain frame: 35 kB; 10 epochs: 53 kB), so
    use at least 64 frames and 5 epochs for timing.
    """
    from medcloak.keys import Key
    from medcloak.obfuscation.pipeline import ObfuscationConfig, Obfuscator
    from medcloak.obfuscation.vae import VAEConfig

    cfg = ObfuscationConfig(image_size=int(frames.shape[1]), vae=replace(VAEConfig(), epochs=epochs, seed=seed))
    obf = Obfuscator(Key(BENCH_KEY), config=cfg)
    obf.fit(frames, progress=False)
    return obf


def at_size(obf, size: int):
    """The same key and VAE weights as ``obf``, for frames of ``size`` px (benchmark shortcut).

    The VAE is fully convolutional, so weights fitted at one size run at any size divisible by
    ``2**downsamples``; the model fingerprint differs because the config holds the size.
    """
    from medcloak.obfuscation.pipeline import Obfuscator

    out = Obfuscator(obf.key, config=replace(obf.config, image_size=int(size)))
    out.model, out._vae_bytes, out.history = obf.model, obf._vae_bytes, list(obf.history)
    return out


def write_json(path: str | os.PathLike, doc: dict) -> None:
    """Write ``doc`` as indented JSON, atomically."""
    from medcloak.io.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=False) + "\n")


def print_rows(title: str, header: list[str], rows: list[list], *, file=sys.stdout) -> None:
    """Print a plain fixed-width table."""
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}", file=file)
    for j, r in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths)), file=file)
        if j == 0:
            print("  " + "  ".join("-" * w for w in widths), file=file)
    file.flush()


def _fmt(c) -> str:
    if isinstance(c, float):
        return f"{c:.3g}" if abs(c) < 100 else f"{c:.0f}"
    return str(c)
