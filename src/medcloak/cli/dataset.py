"""``medcloak dataset``: a hospital's folder of DICOM XA cines -> a study dataset (frames + labels.csv)."""

from __future__ import annotations

from pathlib import Path

import typer

from medcloak.cli._app import app

__all__ = ["dataset"]


@app.command()
def dataset(
    dicom_dir: Path = typer.Argument(..., help="Folder of DICOM XA cines (searched recursively; read-only)."),
    out: Path = typer.Option(..., "--out", help="Dataset folder to write: frames/*.png (16-bit), labels.csv, "
                             "intake.json. Must not contain DICOM_DIR."),
    key_file: Path = typer.Option(..., "--key", help="The hospital's key file (create one with: medcloak keygen "
                                  "hospital.key). Patients, studies, series and cines are named by keyed "
                                  "pseudonyms (HMAC-SHA256) of their IDs/UIDs."),
    labels: Path | None = typer.Option(None, "--labels", help="CSV with a 'label' column keyed by 'file', "
                                       "'SeriesInstanceUID' or 'StudyInstanceUID'. Without it the label "
                                       "column is left empty."),
    frames: int = typer.Option(8, "--frames", help="Frames per cine: the vessel area of every frame "
                               "(metrics.vessel_map) is scored, the opacified span (>= half the best score) "
                               "is cut into N equal time windows and the best frame of each is kept, so "
                               "picks spread over the cardiac cycle."),
    size: int | None = typer.Option(None, "--size", help="Resize frames to SIZE x SIZE (default: keep)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the patient-wise train/val/test split (70/15/15 %)."),
    map_csv: Path | None = typer.Option(None, "--map", help="Also write a hospital-side table pseudonym -> "
                                        "PatientID, UIDs, source file (mode 0600; must lie outside OUT)."),
    force: bool = typer.Option(False, "--force", help="Write into an OUT that already holds labels.csv."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars on stderr."),
) -> None:
    """Turn a folder of DICOM XA cines into a dataset folder for fit, train and study.

    Cines (Modality XA, two or more frames) are grouped by patient, study and series under keyed
    pseudonyms: no name, ID, UID or source file name is written into OUT. Files that are not XA
    cines are reported and skipped; unreadable ones are reported, skipped and make the exit
    status 1. A labels CSV that does not match the folder is an error naming the rows (status 2).
    """
    from medcloak.io.intake import build_dataset
    from medcloak.keys import Key

    key = Key.load(key_file)
    s = build_dataset(dicom_dir, out, key=key, labels_csv=labels, frames=frames, size=size, seed=seed,
                      map_csv=map_csv, overwrite=force, progress=progress)
    for path, reason in s.skipped:
        typer.echo(f"skipped: {path}: {reason}", err=True)
    for path, reason in s.failed:
        typer.secho(f"failed: {path}: {reason}", fg="red", err=True)
    for note in s.notes:
        typer.secho(f"note: {note}", fg="yellow", err=True)
    if s.n_cines:
        classes = ", ".join(f"{k} {v}" for k, v in s.classes.items()) or "unlabelled"
        splits = " / ".join(f"{k} {v}" for k, v in s.splits.items())
        typer.echo(f"{s.n_frames} frames from {s.n_cines} cines ({s.n_patients} patients, {s.n_studies} studies, "
                   f"{s.n_series} series; {classes}; {splits}); {len(s.skipped)} files skipped, "
                   f"{len(s.failed)} failed, of {s.n_files} -> {out / 'labels.csv'}")
    if map_csv is not None and s.n_cines:
        typer.echo(f"pseudonym map (keep at the hospital): {map_csv}")
    if s.failed or not s.n_cines:
        raise typer.Exit(code=1)
