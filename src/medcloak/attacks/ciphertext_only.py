"""T4 as a plug-in: the ciphertext-only statistics attack (:mod:`medcloak.attacks.statistics`)
run by :func:`medcloak.attacks.runner.run_attacks` on the victim's frames, under every victim key."""

from __future__ import annotations

import numpy as np

from medcloak.attacks.base import Attack, Knowledge
from medcloak.attacks.statistics import ciphertext_only_attack
from medcloak.errors import MedcloakError

__all__ = ["CiphertextOnly"]


class CiphertextOnly(Attack):
    """T4 as a plug-in: :func:`ciphertext_only_attack` on the victim's test frames, and -- when
    the attacker is given every obfuscated frame the cloud holds (:attr:`Knowledge.ciphertexts`)
    -- a second row pooling all of them (the attack grows stronger with every frame it pools),
    scored on the same test frames. Scored per victim key (:attr:`Attack.per_key`): its strength
    varies with the key the victim drew, so one key's figure says little."""

    threat = "T4"
    knows = "only the victim's obfuscated frames (ciphertext-only statistics)"
    input = "raw"
    per_key = True

    @classmethod
    def variants(cls, knowledge: Knowledge) -> list[str]:
        return ["test"] + (["pooled"] if knowledge.ciphertexts is not None else [])

    @classmethod
    def applies(cls, knowledge: Knowledge) -> str | None:
        if knowledge.levels is None:
            return "the output is not a few grey levels (the statistics attack orders levels)"
        return None

    @property
    def label(self) -> str:
        if self.variant == "pooled":
            return f"ciphertext-only, all {len(self._pool)} frames the cloud holds"
        return "ciphertext-only statistics"

    def fit(self, knowledge: Knowledge) -> "CiphertextOnly":
        self._levels = knowledge.levels or 256
        # the restarts draw from the attacker's own seed, never from anything of the victim's
        self._options = {"seed": knowledge.config.attacker_seed, **knowledge.config.t4_options}
        self._pool, self._victims = knowledge.ciphertexts, knowledge.ciphertext_victims
        return self

    def for_victim_key(self, knowledge: Knowledge) -> "CiphertextOnly":
        """The same attack pooling what the cloud holds under another victim key."""
        import copy

        other = copy.copy(self)
        other._pool, other._victims = knowledge.ciphertexts, knowledge.ciphertext_victims
        return other

    def __call__(self, obfuscated: np.ndarray) -> np.ndarray:
        if self.variant != "pooled":
            return np.asarray(ciphertext_only_attack(obfuscated, levels=self._levels, **self._options), np.float32)
        victims = np.asarray(self._victims, bool)
        if not np.array_equal(self._pool[victims], np.asarray(obfuscated, self._pool.dtype)):
            raise MedcloakError("T4 pooled: the attacked frames are not the marked frames of the pool")
        rec = ciphertext_only_attack(self._pool, levels=self._levels, **self._options)
        return np.asarray(rec, np.float32)[victims]
