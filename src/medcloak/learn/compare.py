"""Original vs obfuscated: the same recipe trained and tested on both (the utility comparison).

:func:`compare` trains one classifier on original frames and one on obfuscated frames with the
*same* :class:`~medcloak.learn.recipe.Recipe` object and reports both test metrics and the
overhead ratio of epoch times. It is the cloud's side: it sees frames and labels only, never a
key or a scheme.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from medcloak.errors import MedcloakError
from medcloak.learn.evaluate import evaluate
from medcloak.learn.recipe import Recipe
from medcloak.learn.train import TrainResult, train_classifier

__all__ = ["Comparison", "compare", "train_and_evaluate", "frameset_splits"]

Splits = Mapping[str, tuple[np.ndarray, Sequence]]


def frameset_splits(data) -> dict:
    """``{"train": (x, y), "val": (x, y), "test": (x, y)}`` of a split :class:`~medcloak.io.frameset.FrameSet`."""
    return {s: (sub.frames, sub.labels) for s in ("train", "val", "test") for sub in [data.subset(s)]}


@dataclass
class Comparison:
    """Original vs obfuscated training with one recipe (both results hold the same recipe object)."""

    recipe: Recipe
    original: TrainResult
    obfuscated: TrainResult
    metrics_original: dict
    metrics_obfuscated: dict

    @property
    def overhead_ratio(self) -> float:
        """Mean epoch time on obfuscated frames / on original frames."""
        return self.obfuscated.mean_epoch_seconds / self.original.mean_epoch_seconds


def train_and_evaluate(splits: Splits, *, recipe: Recipe, model, n_boot: int, seed: int, progress: bool,
                       **options) -> tuple[TrainResult, dict]:
    """Train on ``splits["train"]`` (early stopping on ``"val"``), then test metrics with bootstrap CIs."""
    (xtr, ytr), (xva, yva), (xte, yte) = splits["train"], splits["val"], splits["test"]
    res = train_classifier(xtr, ytr, xva, yva, recipe=recipe, model=model, progress=progress, **options)
    met = evaluate(res.model, xte, yte, classes=res.classes, n_boot=n_boot, seed=seed)
    return res, met


def compare(
    original: Splits,
    obfuscated: Splits,
    *,
    recipe: Recipe,
    model="small",
    obfuscated_options: Mapping | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> Comparison:
    """Train and test the same recipe on original and on obfuscated splits.

    Parameters
    ----------
    original, obfuscated : mapping
        ``{"train": (x, y), "val": (x, y), "test": (x, y)}``; frames float32 (N, H, W) in [0, 1].
        The two must be the same frames (same patients and split), obfuscated or not.
    recipe : Recipe
        Used unchanged, as the same object, for both trainings.
    model : str or ClassifierConfig
        Classifier family (or its full config) for both sides.
    obfuscated_options : mapping, optional
        Extra :class:`~medcloak.learn.models.ClassifierConfig` fields for the obfuscated side
        only (the level-embedding lever: ``{"input_mode": "level-embedding", "levels": L}``).
    n_boot, seed : int
        Bootstrap resamples and seed of the test metrics' CIs.
    """
    for split in ("train", "val", "test"):
        if len(original[split][1]) != len(obfuscated[split][1]):
            raise MedcloakError(f"compare: the {split} splits of original and obfuscated frames differ in size")
    ro, mo = train_and_evaluate(original, recipe=recipe, model=model, n_boot=n_boot, seed=seed, progress=progress)
    rb, mb = train_and_evaluate(obfuscated, recipe=recipe, model=model, n_boot=n_boot, seed=seed, progress=progress,
                         **dict(obfuscated_options or {}))
    return Comparison(recipe, ro, rb, mo, mb)
