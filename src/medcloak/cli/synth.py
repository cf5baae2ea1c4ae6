"""``medcloak synth`` (generate a semi-synthetic angiography dataset) and ``medcloak grid``."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from medcloak.cli._app import app
from medcloak.errors import MedcloakError

__all__ = ["synth", "grid"]


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Dataset folder to write (frames/, masks/, clean/, labels.csv)."),
    n: int = typer.Option(1000, "--n", help="Number of frames (at least 2); half LCA, half RCA."),
    size: int = typer.Option(128, "--size", help="Frame side in pixels (at least 16)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generator and of the patient-wise split."),
    frames_per_patient: int = typer.Option(8, "--frames-per-patient", help="Frames per synthetic patient."),
    backgrounds: str = typer.Option("auto", "--backgrounds", help="auto, real or synthetic chest anatomy."),
    dicom: bool = typer.Option(False, "--dicom", help="Also write one multi-frame DICOM XA cine per patient."),
    grid: Path | None = typer.Option(None, "--grid", help="Also save a figure of example frames to this PNG."),
    force: bool = typer.Option(False, "--force", help="Overwrite a folder that already holds labels.csv."),
) -> None:
    """Generate semi-synthetic X-ray coronary angiography frames with vessel masks and labels."""
    from medcloak.synth import generate, make_grid, write_synth

    if (out / "labels.csv").exists() and not force:
        raise MedcloakError("already holds a dataset (labels.csv); use --force to overwrite", out)
    t0 = time.perf_counter()
    data = generate(n, size=size, seed=seed, frames_per_patient=frames_per_patient,
                    backgrounds=backgrounds, progress=True)
    t_gen = time.perf_counter() - t0
    man = write_synth(out, data, seed=seed, dicom=dicom, progress=True, overwrite=force)
    if grid is not None:
        make_grid(data, grid, n_per_class=6)
    n_lca = data.labels.count("LCA")
    typer.echo(
        f"{len(data)} frames, {len(set(data.patient_ids))} patients, LCA {n_lca} / RCA {len(data) - n_lca}, "
        f"stenosis in {int(data.stenosis.sum())} frames; generated in {t_gen:.1f} s, "
        f"total {time.perf_counter() - t0:.1f} s -> {man.root / 'labels.csv'}"
        + (f"; grid {grid}" if grid is not None else "")
    )


@app.command()
def grid(
    dataset: Path = typer.Argument(..., help="Dataset folder holding labels.csv."),
    out: Path = typer.Option(..., "--out", help="PNG to write."),
    n_per_class: int = typer.Option(4, "--n-per-class", help="Frames per class (at least 2)."),
) -> None:
    """Save a labelled figure of example LCA and RCA frames from a dataset."""
    from medcloak.synth import make_grid

    typer.echo(f"wrote {make_grid(dataset, out, n_per_class=n_per_class)}")
