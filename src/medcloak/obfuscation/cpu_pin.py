"""Pin what makes CPU arithmetic differ between machines, so every node writes the same bytes.

A VAE forward pass on the CPU goes through three code paths that each pick their instructions
at run time from what the CPU offers: ATen's own vectorised kernels (``ATEN_CPU_CAPABILITY``),
oneDNN's convolutions (``ONEDNN_MAX_CPU_ISA``) and MKL's BLAS (``MKL_CBWR``, conditional
numerical reproducibility). Two nodes of one cluster with different CPUs (AVX2 only, AVX-512)
can therefore round differently. A *profile* caps all three at one instruction set, and one
thread per process removes the other source of difference (the order of a parallel reduction).

The environment variables are read once, when torch first uses each library, so they must be
set before that: in a fresh worker process (Ray's ``runtime_env``, or a spawned local worker)
or, in this process, before any torch computation (:func:`pin_process` checks it took effect).

Profiles (``--cpu-isa``):

========  =====================  =====================  ============
profile   ATEN_CPU_CAPABILITY    ONEDNN_MAX_CPU_ISA     MKL_CBWR
========  =====================  =====================  ============
default   default (no SIMD)      SSE41                  COMPATIBLE
avx2      avx2                   AVX2                   AVX2
avx512    avx512                 AVX512_CORE            AVX512
========  =====================  =====================  ============
"""

from __future__ import annotations

import os

from medcloak.errors import MedcloakError

__all__ = ["PROFILES", "pin_environment", "check_pinned", "pin_process", "pin_record"]

PROFILES: dict[str, dict[str, str]] = {
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "MKL_CBWR": "AVX512"},
}
#: What ``torch.backends.cpu.get_cpu_capability()`` reports when a profile took effect.
_EXPECTED = {"default": "DEFAULT", "avx2": "AVX2", "avx512": "AVX512"}
_THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise MedcloakError(f"cpu-isa must be one of {', '.join(PROFILES)}, got {profile!r}")
    return profile


def pin_environment(profile: str) -> dict[str, str]:
    """Environment variables of ``profile`` (plus one OpenMP/MKL thread), for a fresh process."""
    return {**PROFILES[_check_profile(profile)], **_THREADS}


def check_pinned(profile: str) -> str:
    """Raise unless this process's torch runs the ``profile`` instruction set; return what it runs.

    torch silently falls back to a lower instruction set when the CPU lacks the one asked for
    (``avx512`` on an AVX2-only node), and ignores the variable once it has chosen: both would
    break the same-bytes guarantee, so both are errors.
    """
    import torch

    got = torch.backends.cpu.get_cpu_capability()
    want = _EXPECTED[_check_profile(profile)]
    if got != want:
        raise MedcloakError(f"CPU instruction set pinned to {profile} but torch runs {got} here (a CPU without "
                            f"it, or torch was used before the pin was set); choose a --cpu-isa every node has")
    return got


def pin_process(profile: str) -> dict:
    """Pin this process (and the worker processes it spawns later) to ``profile``; see :func:`pin_record`."""
    os.environ.update(pin_environment(profile))
    check_pinned(profile)
    return pin_record(profile)


def pin_record(profile: str | None) -> dict:
    """What the manifest records about the arithmetic: profile, its variables, torch version.

    ``profile=None`` (not pinned) records the instruction set this process's torch runs.
    """
    import torch

    rec: dict = {"isa_profile": profile, "torch": torch.__version__, "torch_threads": 1}
    if profile is None:
        rec["aten_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    else:
        rec["aten_cpu_capability"] = _EXPECTED[_check_profile(profile)]
        rec["env"] = pin_environment(profile)
    return rec
