"""The cloud's side: train and evaluate a binary classifier on (obfuscated) frames.

* :mod:`.models` -- the classifier factory (``small`` / ``wide`` VGG-like CNNs, MONAI DenseNet;
  optional level-embedding input) and its model file;
* :mod:`.recipe` -- the one frozen training :class:`Recipe`;
* :mod:`.train` -- :func:`train_classifier` (early stopping, curves, epoch times);
* :mod:`.evaluate` -- :func:`evaluate` (metrics with bootstrap CIs, confusion, ROC);
* :mod:`.predict` -- the deployed path (obfuscate with the owner's key, then predict);
* :mod:`.artifacts` -- the files of a training run;
* :mod:`.compare` -- :func:`compare`: original vs obfuscated frames, the same recipe object.

The cloud sees frames and labels only: nothing here imports keys, schemes or the generator.
"""

from medcloak.learn.evaluate import binary_metrics, evaluate
from medcloak.learn.compare import Comparison, compare, frameset_splits
from medcloak.learn.models import ClassifierConfig, build_classifier, load_classifier, save_classifier
from medcloak.learn.predict import predict_files, predict_proba
from medcloak.learn.recipe import Recipe
from medcloak.learn.train import TrainResult, train_classifier

__all__ = [
    "Recipe",
    "ClassifierConfig",
    "build_classifier",
    "save_classifier",
    "load_classifier",
    "TrainResult",
    "train_classifier",
    "evaluate",
    "binary_metrics",
    "predict_proba",
    "predict_files",
    "Comparison",
    "compare",
    "frameset_splits",
]
