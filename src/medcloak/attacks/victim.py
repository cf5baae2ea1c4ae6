"""What is attacked: :class:`AttackVictim` (the victim's frames, masks, release and fitted scheme)
and the two ways to build one, on the semi-synthetic generator (:func:`synthetic_victim`) or on
a fitted scheme and its dataset (:func:`dataset_victim`); the study builds its own with
:meth:`AttackVictim.from_frameset`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from medcloak.attacks.own import PublicScheme, image_like, victim_key
from medcloak.errors import MedcloakError

__all__ = ["AttackVictim", "synthetic_victim", "dataset_victim"]


@dataclass
class AttackVictim:
    """What is attacked.

    Parameters
    ----------
    scheme : PublicScheme
        The public algorithm and its public config (attackers T0, T2, T3 re-run it with their
        own data and keys).
    obfuscate : callable
        The victim's fitted obfuscator, ``(N, H, W) -> (N, H, W)`` (T1 leaked pairs only).
    train_originals : ndarray (N, H, W)
        The victim's training frames, the pool of leaked originals for T1.
    test_originals, test_obfuscated : ndarray (M, H, W)
        Test frames and their obfuscated versions (what the cloud holds).
    test_masks : ndarray of bool (M, H, W)
        Vessel masks of the test frames (from the generator, or traced).
    test_ignore : ndarray of bool (M, H, W), optional
        Pixels no vessel score counts either way (the catheter: ``FrameSet.catheter``, or a
        dataset's ``catheter_mask`` column); see :func:`medcloak.metrics.vessel_dice`.
    levels : int or None
        Grey levels of the obfuscated frames (public parameter); ``None`` when not quantised.
    description : str
        Free text kept in the results' metadata.
    ciphertexts : ndarray (K, H, W), optional
        Every obfuscated frame the cloud holds (train, val and test): T4 then adds a row pooling
        them all, scored on the test frames.
    ciphertext_victims : ndarray of bool (K,), optional
        Which of ``ciphertexts`` are the test frames (in their order).
    fitted : Scheme, optional
        The victim's fitted scheme: re-keyed (:meth:`~medcloak.obfuscation.scheme.Scheme.rekey`)
        to score the per-key attacks under simulated victim keys (:meth:`under_key`). Without it
        they are scored under the one key of ``test_obfuscated``.
    pool_originals : ndarray (K, H, W), optional
        The originals of ``ciphertexts`` (to re-obfuscate the pool under other keys).
    """

    scheme: PublicScheme
    obfuscate: Callable[[np.ndarray], np.ndarray]
    train_originals: np.ndarray
    test_originals: np.ndarray
    test_obfuscated: np.ndarray
    test_masks: np.ndarray
    levels: int | None = 256
    description: str = ""
    test_ignore: np.ndarray | None = None
    ciphertexts: np.ndarray | None = None
    ciphertext_victims: np.ndarray | None = None
    fitted: object = None
    pool_originals: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.test_ignore is not None:
            self.test_ignore = np.asarray(self.test_ignore).astype(bool)
            if self.test_ignore.shape != np.shape(self.test_masks):
                raise MedcloakError(f"victim: test_ignore {self.test_ignore.shape} does not match the masks "
                                    f"{np.shape(self.test_masks)}")
        self.test_originals = np.asarray(self.test_originals, np.float32)
        self.test_obfuscated = np.asarray(self.test_obfuscated, np.float32)
        self.test_masks = np.asarray(self.test_masks).astype(bool)
        self.train_originals = np.asarray(self.train_originals, np.float32)
        shapes = {self.test_originals.shape, self.test_masks.shape}
        if len(shapes) != 1 or self.test_originals.ndim != 3 or len(self.test_originals) == 0 \
                or len(self.test_obfuscated) != len(self.test_originals):
            raise MedcloakError(f"victim: test originals and masks must be equal (M, H, W) stacks with one obfuscated "
                                f"frame each, got {sorted(shapes)} and {self.test_obfuscated.shape}")
        if self.train_originals.ndim != 3 or self.train_originals.shape[1:] != self.test_originals.shape[1:]:
            raise MedcloakError(f"victim: training frames {self.train_originals.shape} do not match test frames {self.test_originals.shape}")
        if (self.ciphertexts is None) != (self.ciphertext_victims is None):
            raise MedcloakError("victim: ciphertexts and ciphertext_victims go together")
        if self.pool_originals is not None and (self.ciphertexts is None
                                                or len(self.pool_originals) != len(self.ciphertexts)):
            raise MedcloakError("victim: pool_originals must hold one original per ciphertext")

    def keys_available(self, requested: int) -> tuple[int, str]:
        """How many victim keys the per-key attacks can be scored under, and why fewer.

        Returns ``(n, note)``: ``n = requested`` when the fitted scheme can be re-keyed, else
        ``(1, reason)``."""
        if requested <= 1:
            return 1, ""
        if self.fitted is None:
            return 1, "one victim key only: no fitted scheme to re-key"
        if not getattr(self.fitted, "key_independent_fit", False):
            return 1, (f"one victim key only: scheme {self.fitted.name} trains key-dependent parts "
                       "(a fit per key is not simulated)")
        if self.ciphertexts is not None and self.pool_originals is None:
            return 1, "one victim key only: the pooled frames' originals are missing"
        return int(requested), ""

    def under_key(self, index: int, *, seed: int) -> "AttackVictim":
        """This victim with its frames obfuscated under simulated victim key ``index``.

        ``index = 0`` is the victim itself (its own key); ``index >= 1`` re-keys :attr:`fitted`
        under :func:`~medcloak.attacks.own.victim_key` ``(seed, index)`` and re-obfuscates the
        test frames and the pooled ciphertexts (the test frames are taken from the pool, so they
        stay the marked frames of the pool). Originals, masks and the T1 leak are unchanged.
        """
        if index == 0:
            return self
        if self.fitted is None:
            raise MedcloakError("victim: no fitted scheme to re-key")
        other = self.fitted.rekey(victim_key(seed, index))
        if self.ciphertexts is not None:
            pool = np.asarray(other.apply(self.pool_originals), np.float32)
            test = pool[np.asarray(self.ciphertext_victims, bool)]
        else:
            pool, test = None, np.asarray(other.apply(self.test_originals), np.float32)
        return replace(self, test_obfuscated=test, ciphertexts=pool)

    @property
    def test_images(self) -> np.ndarray | None:
        """The obfuscated test frames as images of the originals' size
        (:func:`medcloak.attacks.own.image_like`), or ``None`` (patch tokens)."""
        return image_like(self.test_obfuscated, self.test_originals.shape[1:], output=self.scheme.make().output)

    @classmethod
    def from_frameset(cls, data, scheme, *, obfuscated: np.ndarray | None = None, public: PublicScheme | None = None,
                      pool_ciphertexts: bool = False, description: str = "") -> "AttackVictim":
        """The victim of a split :class:`~medcloak.io.frameset.FrameSet` and its fitted scheme.

        Parameters
        ----------
        data : FrameSet
            With ``train`` and ``test`` frames and vessel masks (``masks``).
        scheme : Scheme
            The victim's fitted scheme (its key makes T1's leaked pairs; re-keyed under simulated
            victim keys for the per-key attacks, :meth:`under_key`).
        obfuscated : ndarray (N, H, W), optional
            ``scheme.apply(data.frames)`` when already computed (every frame, in order);
            otherwise the test frames are obfuscated here.
        public : PublicScheme, optional
            What the attackers re-run (default: the victim's own scheme name and config, public).
        pool_ciphertexts : bool
            Hand T4 every obfuscated frame the cloud holds (needs ``obfuscated``).
        """
        test, train = data.split == "test", data.split == "train"
        if not test.any() or not train.any():
            raise MedcloakError("the attacked data needs 'train' and 'test' frames")
        if data.masks is None:
            raise MedcloakError("the attacked data has no vessel masks")
        if obfuscated is None:
            if pool_ciphertexts:
                raise MedcloakError("pool_ciphertexts needs the obfuscated frames of the whole set")
            test_obf = scheme.apply(data.frames[test])
        else:
            test_obf = np.asarray(obfuscated, np.float32)[test]
        return cls(
            scheme=public or PublicScheme(scheme.name, scheme.config), obfuscate=scheme.apply,
            train_originals=data.frames[train], test_originals=data.frames[test], test_obfuscated=test_obf,
            test_masks=data.masks[test], test_ignore=None if data.catheter is None else data.catheter[test],
            levels=scheme.output_levels, description=description,
            ciphertexts=np.asarray(obfuscated, np.float32) if pool_ciphertexts else None,
            ciphertext_victims=test.copy() if pool_ciphertexts else None,
            fitted=scheme, pool_originals=np.asarray(data.frames, np.float32) if pool_ciphertexts else None,
        )


def synthetic_victim(
    *,
    size: int = 64,
    n: int = 256,
    seed: int = 0,
    obfuscation=None,
    scheme: str = "paper",
    test_fraction: float = 0.25,
    progress: bool = True,
) -> AttackVictim:
    """A victim on the semi-synthetic generator: a fitted scheme under a fresh key.

    Parameters
    ----------
    size, n, seed : int
        Frame side (pixels), number of frames and generator seed of the victim's data.
    obfuscation : Config, optional
        The victim's (public) scheme config; default the scheme's defaults (``paper``: VAE then
        256-level map).
    scheme : str
        The victim's scheme.
    test_fraction : float
        Fraction of patients held out as test frames (patient-wise split, experiment seed ``seed``).
    progress : bool
        Training bar.

    Returns
    -------
    AttackVictim
        Its key is a fresh :meth:`medcloak.keys.Key.generate` key, never stored.
    """
    from medcloak import synth
    from medcloak.keys import Key
    from medcloak.obfuscation.scheme import make_scheme

    data = synth.generate(n, size=size, seed=seed)
    pids = np.asarray(data.patient_ids)
    patients = np.unique(pids)
    rng = np.random.default_rng(seed)
    n_test = max(1, int(round(test_fraction * len(patients))))
    test_p = set(rng.choice(patients, size=n_test, replace=False).tolist())
    is_test = np.array([p in test_p for p in pids])
    if is_test.all() or not is_test.any():
        raise MedcloakError(f"synthetic victim: need at least two patients, got {len(patients)}")
    data.split = np.where(is_test, "test", "train")
    train = data.frames[~is_test]
    n_val = max(1, len(train) // 10)
    victim = make_scheme(scheme, obfuscation).fit(train[n_val:], Key.generate(), val=train[:n_val], progress=progress)
    c = victim.config
    return AttackVictim.from_frameset(
        data, victim,
        description=f"synthetic victim: {n} frames {size}x{size}, generator seed {seed}, "
                    f"{len(patients)} patients ({n_test} test), scheme {scheme}"
                    + (f", order={c.order}, levels={c.levels}" if scheme == "paper" else f", config {c}"),
    )


def dataset_victim(scheme, dataset, *, size: int | None = None, public: PublicScheme | None = None) -> AttackVictim:
    """A victim from a real fitted scheme and its dataset (``labels.csv`` with a ``mask`` column).

    Parameters
    ----------
    scheme : Scheme
        The fitted victim scheme (its key is only used to make T1's leaked pairs and the
        obfuscated test frames).
    dataset : path-like or Manifest
        Its train split is the pool of leaked originals (T1); its test split is attacked and needs
        a ``mask`` column (vessel masks) for the vessel scores.
    size : int, optional
        Frame side; default the scheme's input size.
    public : PublicScheme, optional
        What the attackers re-run (default the victim's own scheme and config, which are public).
    """
    from medcloak.io.frameset import load_dataset

    size = size or (scheme.input_size or (None,))[0]
    if size is None:
        raise MedcloakError("give the frame size (the scheme accepts any size)")
    data = load_dataset(dataset, size)
    if "NO vessel masks" in data.source:
        raise MedcloakError("the dataset needs a 'mask' column (vessel masks) to score attacks")
    return AttackVictim.from_frameset(
        data, scheme, public=public,
        description=f"dataset {dataset}: {int((data.split == 'train').sum())} train / "
                    f"{int((data.split == 'test').sum())} test frames at {size}x{size}, scheme {scheme.name}, "
                    f"key {scheme.key.short_fingerprint}",
    )
