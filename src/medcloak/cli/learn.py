"""``medcloak train`` (the cloud trains a classifier) and ``medcloak predict`` (the deployed path)."""

from __future__ import annotations

from pathlib import Path

import typer

from medcloak.cli._app import app
from medcloak.errors import MedcloakError, printable

__all__ = ["train", "predict"]


def _load_obfuscator(key_file: Path | None, obfuscator_dir: Path | None):
    if key_file is None and obfuscator_dir is None:
        return None
    if key_file is None or obfuscator_dir is None:
        raise MedcloakError("--key and --obfuscator go together (the owner's key and its 'medcloak fit' model)")
    from medcloak.keys import Key
    from medcloak.obfuscation.scheme import load_scheme

    return load_scheme(obfuscator_dir, Key.load(key_file))


def _fmt(m: dict) -> str:
    return f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"


@app.command()
def train(
    dataset: Path = typer.Argument(..., help="Dataset folder holding labels.csv with train/val/test splits."),
    out: Path = typer.Option(..., "--out", help="Folder to write model.pt, metrics.json, curves, ROC, confusion."),
    size: int = typer.Option(None, "--size", help="Resize frames to SIZE x SIZE (default: native size)."),
    model: str = typer.Option("small", "--model", help="small | wide | densenet."),
    epochs: int = typer.Option(50, "--epochs", help="Maximum epochs (early stopping on validation loss)."),
    seed: int = typer.Option(0, "--seed", help="Experiment seed (initialisation, shuffling, augmentation)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Frames per step."),
    input_mode: str = typer.Option("intensity", "--input-mode",
                                   help="intensity | level-embedding (a lever that changes the method)."),
    levels: int = typer.Option(None, "--levels", help="Grey levels of the input, for level-embedding "
                               "(default: the obfuscator's output levels)."),
    key_file: Path = typer.Option(None, "--key", help="Owner's key: obfuscate the dataset in memory first."),
    obfuscator_dir: Path = typer.Option(None, "--obfuscator", help="Owner's model folder from 'medcloak fit'."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap resamples of the test set for the CIs."),
    force: bool = typer.Option(False, "--force", help="Overwrite a folder that already holds model.pt."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
    allow_duplicates: bool = typer.Option(False, "--allow-duplicates",
                                          help="labels.csv: warn, not fail, when an image is listed twice."),
    allow_split_leak: bool = typer.Option(False, "--allow-split-leak",
                                          help="labels.csv: warn, not fail, when a patient is in two splits."),
) -> None:
    """Train a binary classifier on the train split, early-stop on val, evaluate on test."""
    from medcloak.io.arrays import load_split
    from medcloak.io.dataset import read_manifest
    from medcloak.learn.artifacts import write_run
    from medcloak.learn.evaluate import evaluate
    from medcloak.learn.recipe import Recipe
    from medcloak.learn.train import train_classifier

    if (out / "model.pt").exists() and not force:
        raise MedcloakError("already holds a classifier (model.pt); use --force to overwrite", out)
    obf = _load_obfuscator(key_file, obfuscator_dir)
    if obf is not None and size is None and obf.input_size is not None:
        size = obf.input_size[0]
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        man = read_manifest(dataset, allow_duplicates=allow_duplicates, allow_split_leak=allow_split_leak)
    for w in caught:
        typer.secho(f"warning: {w.message}", fg="yellow", err=True)
    splits = {}
    for split in ("train", "val", "test"):
        recs = man.subset(split)
        if not recs:
            raise MedcloakError(f"no '{split}' rows (assign patient-wise splits first)", man.root / "labels.csv")
        x = load_split(man, split, size=size)
        if obf is not None:
            x = obf.apply(x)
        splits[split] = (x, [r.label for r in recs], [r.patient_id for r in recs])
    if input_mode == "level-embedding" and levels is None:
        if obf is None:
            raise MedcloakError("--input-mode level-embedding needs --levels (or --key/--obfuscator)")
        levels = obf.output_levels
        if levels is None:
            raise MedcloakError(f"--input-mode level-embedding needs grey levels; scheme {obf.name!r} outputs "
                                f"{obf.output}")
    recipe = Recipe(max_epochs=epochs, seed=seed, batch_size=batch_size)
    (xtr, ytr, ptr), (xva, yva, pva), (xte, yte, pte) = splits["train"], splits["val"], splits["test"]
    result = train_classifier(xtr, ytr, xva, yva, recipe=recipe, model=model, input_mode=input_mode,
                              levels=levels, progress=progress)
    result.extra = {"dataset": str(dataset), "n_train": len(ytr), "n_val": len(yva), "n_test": len(yte),
                    "patients": {"train": len(set(ptr)), "val": len(set(pva)), "test": len(set(pte))},
                    "obfuscated_in_memory": obf is not None,
                    **({"key_fingerprint": obf.key_fingerprint} if obf is not None else {})}
    metrics = evaluate(result.model, xte, yte, classes=result.classes, n_boot=n_boot, seed=seed)
    write_run(out, result, metrics)
    typer.echo(
        f"test accuracy {_fmt(metrics['accuracy'])}, AUC {_fmt(metrics['roc_auc'])}, F1 {_fmt(metrics['f1'])} "
        f"on {len(yte)} frames; {result.epochs} epochs (best {result.best_epoch}"
        f"{', stopped early' if result.stopped_early else ''}), mean epoch {result.mean_epoch_seconds:.2f} s "
        f"-> {out}"
    )


@app.command()
def predict(
    model_dir: Path = typer.Argument(..., help="Folder from 'medcloak train' (holds model.pt)."),
    inputs: list[Path] = typer.Argument(..., help="Image files or folders."),
    key_file: Path = typer.Option(None, "--key", help="Owner's key: obfuscate the inputs first."),
    obfuscator_dir: Path = typer.Option(None, "--obfuscator", help="Owner's model folder from 'medcloak fit'."),
    out: Path = typer.Option(None, "--out", help="CSV to write (default: print to stdout)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
) -> None:
    """Predict the class of new frames: CSV of path, frame, label, probability, error."""
    from medcloak.learn.predict import format_predictions, predict_files, write_predictions

    obf = _load_obfuscator(key_file, obfuscator_dir)
    rows = predict_files(model_dir, inputs, obfuscator=obf, progress=progress)
    if out is not None:
        write_predictions(out, rows)
    else:
        typer.echo(format_predictions(rows), nl=False)
    failed = [r for r in rows if r["error"]]
    for r in failed:
        typer.secho(f"failed: {printable(r['error'])}", fg="red", err=True)
    n_ok = len(rows) - len(failed)
    typer.echo(f"{n_ok} frames predicted, {len(failed)} files failed"
               + (f"; obfuscated with key {obf.key.short_fingerprint}" if obf is not None else "")
               + (f" -> {out}" if out is not None else ""), err=out is None)
    if failed:
        raise typer.Exit(1)
