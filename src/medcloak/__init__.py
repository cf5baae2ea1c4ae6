"""medcloak: keyed obfuscation of medical images for cloud deep learning.

The method of Popescu et al. 2022 (VAE + keyed random non-bijective intensity mapping) as the
scheme ``paper``, other schemes as plug-ins, and the study that measures how useful and how
private each is. The face of the library, as Opacus puts ``PrivacyEngine`` at its top::

    from medcloak import Key, FrameSet, Obfuscator, schemes, attacks, run_study

``Key`` (:mod:`medcloak.keys`), ``FrameSet`` and ``load_dataset`` (:mod:`medcloak.io.frameset`),
``Obfuscator`` (the paper's engine, :mod:`medcloak.obfuscation.pipeline`), ``schemes`` (the
:class:`~medcloak.obfuscation.scheme.Scheme` registry), ``attacks`` (:mod:`medcloak.attacks`),
``run_study`` and ``load_config`` (:mod:`medcloak.study`). Names are imported on first use, so
``import medcloak`` stays light (no torch).

>>> import medcloak
>>> sorted(set(medcloak.schemes.scheme_names()) & {"paper"})
['paper']
"""

import importlib

from medcloak._version import __version__
from medcloak.errors import MedcloakError

#: Public name -> (module, attribute or None for the module itself).
_FACE = {
    "Key": ("medcloak.keys", "Key"),
    "FrameSet": ("medcloak.io.frameset", "FrameSet"),
    "load_dataset": ("medcloak.io.frameset", "load_dataset"),
    "Obfuscator": ("medcloak.obfuscation.pipeline", "Obfuscator"),
    "schemes": ("medcloak.obfuscation.scheme", None),
    "attacks": ("medcloak.attacks", None),
    "run_study": ("medcloak.study.run", "run_study"),
    "load_config": ("medcloak.study.config", "load_config"),
}

__all__ = ["MedcloakError", "__version__", *_FACE]


def __getattr__(name: str):
    if name in _FACE:
        module, attr = _FACE[name]
        mod = importlib.import_module(module)
        return mod if attr is None else getattr(mod, attr)
    raise AttributeError(f"module 'medcloak' has no attribute {name!r}")
