"""Where training runs: CPU by default, a GPU when asked for.

Training functions (:func:`medcloak.learn.train.train_classifier`,
:func:`medcloak.obfuscation.vae.train_vae`, :func:`medcloak.attacks.unet.train_network`) take
``device=``; ``None`` means :func:`training_device`, which reads the process-wide choice made
with :func:`use_device` or the ``MEDCLOAK_DEVICE`` environment variable (``cpu``, ``cuda``,
``cuda:N`` or ``auto`` = CUDA when available, else CPU). The default is ``cpu``: results on
CPU are deterministic for a seed and a thread count, which the tests and the owner's
obfuscation rely on.

Trained models are always handed back on the CPU, so saving, obfuscating and scoring do not
depend on where they were trained; inference helpers run on the device the model is on.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from medcloak.errors import MedcloakError

__all__ = ["resolve_device", "training_device", "use_device", "model_device"]

_CHOICE: str | None = None


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``cpu`` / ``cuda`` / ``cuda:N`` / ``auto`` / None (-> :func:`training_device`) as a torch device.

    Raises
    ------
    MedcloakError
        For an unknown name, or CUDA asked for on a machine without it.
    """
    if name is None:
        return training_device()
    if isinstance(name, torch.device):
        name = str(name)
    name = str(name).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise MedcloakError(f"device {name!r} asked for, but this torch sees no CUDA GPU (use cpu or auto)")
        return torch.device(name)
    raise MedcloakError(f"unknown device {name!r} (use cpu, cuda, cuda:N or auto)")


def training_device() -> torch.device:
    """The process-wide training device: :func:`use_device`'s choice, else ``$MEDCLOAK_DEVICE``, else CPU."""
    return resolve_device(_CHOICE or os.environ.get("MEDCLOAK_DEVICE") or "cpu")


@contextlib.contextmanager
def use_device(name: str | None) -> Iterator[torch.device]:
    """Within the block, training functions called without ``device=`` use ``name``."""
    global _CHOICE
    dev = resolve_device(name or "cpu")
    old, _CHOICE = _CHOICE, str(dev)
    try:
        yield dev
    finally:
        _CHOICE = old


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (CPU for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
