"""Attacks on obfuscated frames, each a plug-in, and the runner that scores them beside a prior.

* :mod:`.base` -- the :class:`Attack` interface, :class:`Knowledge`, the registry, :func:`score`;
* :mod:`.own` -- the attacker's own obfuscations through the Scheme interface (:class:`PublicScheme`);
* :mod:`.direct_view` (T0), :mod:`.reconstruction` (T1-T3), :mod:`.statistics` (T4),
  :mod:`.handmade` (T0's floor), :mod:`.prior` (the no-knowledge baseline);
* :mod:`.runner` -- :func:`run_attacks`, a loop over the registry, and the victim builders.

Threat models: ``docs/threat-model.md``.
"""

import importlib

#: Public name -> the module that defines it (imported on first use: the networks need torch).
_WHERE = {
    "Attack": "base", "AttackerData": "base", "Knowledge": "base", "attack_names": "base", "get_attack": "base",
    "register_attack": "base", "score": "base", "PublicScheme": "own", "attacker_key": "own",
    "THREATS": "runner", "AttackConfig": "runner", "AttackResults": "runner", "AttackVictim": "runner",
    "dataset_victim": "runner", "run_attacks": "runner", "synthetic_victim": "runner",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"medcloak.attacks.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'medcloak.attacks' has no attribute {name!r}")
