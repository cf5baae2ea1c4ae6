"""``medcloak obfuscate``: obfuscate a folder (or file) of images, resumably, with a manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from medcloak.cli._app import app

__all__ = ["obfuscate"]


@app.command()
def obfuscate(
    in_path: Path = typer.Argument(..., help="Input folder (walked recursively) or file; never modified."),
    out_dir: Path = typer.Argument(..., help="Output folder (new, or an earlier run's output to resume)."),
    key_file: Path = typer.Option(..., "--key", help="Key file (medcloak keygen)."),
    model: Path = typer.Option(None, "--model", help="Model folder from 'medcloak fit'; without it the scheme runs "
                               "untrained (paper: the keyed mapping only, weaker)."),
    scheme: str = typer.Option(None, "--scheme", help="Obfuscation scheme; a --model folder of another scheme "
                               "is refused (default: the model's scheme, or paper)."),
    workers: int = typer.Option(1, "--workers", help="Processes that obfuscate: this one and N-1 spawned ones (with --engine ray: actors)."),
    engine: str = typer.Option("local", "--engine", help="local (worker processes on this machine) | ray (a Ray "
                               "cluster via Ray Data; needs the 'scale' extra; same bytes, manifest and resume)."),
    address: str = typer.Option(None, "--address", help="With --engine ray: a running cluster's address "
                                "(ray start --head prints it; 'auto'); default: RAY_ADDRESS, else a local one."),
    cpu_isa: str = typer.Option(None, "--cpu-isa", help="Pin the CPU instruction set so every machine writes the "
                                "same bytes: default | avx2 | avx512 (recorded in the manifest; --engine ray: "
                                "avx2 unless given; local: not pinned unless given)."),
    fmt: str = typer.Option("auto", "--format", help="auto (png, or npy for a scheme with real-valued output such "
                            "as the default pixelate with noise) | png | npy | dicom."),
    png: str = typer.Option(None, "--png", help="PNG encoding, the same pixels either way: fast (zlib level 1; "
                            "16-bit outputs that fit in 8 bits stored with 8) | compat (Pillow's defaults: byte for "
                            "byte the files of earlier medcloak versions). Default: the resumed folder's, else fast; "
                            "recorded in the manifest, and a folder is never mixed."),
    batch_size: int = typer.Option(8, "--batch-size", help="Files per task handed to a worker."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
    keep_names: bool = typer.Option(False, "--keep-names",
                                    help="Mirror input folders and file names in OUT (they reach the cloud)."),
    names: Path = typer.Option(None, "--names", help="Hospital-side map pseudonym -> input "
                               "(default: OUT.names.jsonl beside OUT; never inside OUT)."),
    labels: Path = typer.Option(None, "--labels", help="The hospital's labels.csv (paths relative to IN): write "
                                "OUT/labels.csv with pseudonymous paths and patient ids for 'medcloak train'."),
    allow_duplicates: bool = typer.Option(False, "--allow-duplicates",
                                          help="labels.csv: warn, not fail, on duplicate paths."),
    allow_split_leak: bool = typer.Option(False, "--allow-split-leak",
                                          help="labels.csv: warn, not fail, on a patient in two splits."),
    burned_in: str = typer.Option("refuse", "--burned-in", help="DICOM with BurnedInAnnotation=YES: refuse | "
                                  "mask (blank a border or regions of every frame) | allow (with a warning)."),
    mask_border: float = typer.Option(None, "--mask-border", help="With --burned-in mask: fraction of the "
                                      "shorter side blanked at each edge (default 0.1; 0 with --mask-region)."),
    mask_region: list[str] = typer.Option(None, "--mask-region", help="With --burned-in mask: x0,y0,x1,y1 pixel "
                                          "box blanked in every frame (repeatable)."),
    max_frame_pixels: int = typer.Option(4096 * 4096, "--max-frame-pixels", help="Refuse frames larger than "
                                         "this (height x width, from the header, before decoding)."),
    max_file_pixels: int = typer.Option(4096 * 4096 * 300, "--max-file-pixels",
                                        help="Refuse files with more pixels than this (frames x height x width)."),
    repair_manifest: bool = typer.Option(False, "--repair-manifest",
                                         help="Drop manifest lines that are not valid JSON (their items are redone)."),
) -> None:
    """Obfuscate every image under IN into OUT with the key (and the fitted VAE, if --model).

    Outputs are named by keyed pseudonyms (OUT/ab/abcdef0123456789.png); the map back is written
    beside OUT (OUT.names.jsonl) and stays at the hospital. Writes OUT/manifest.jsonl; rerunning
    resumes; exits 0 only if every file succeeded. --engine ray runs the same per-file work on a Ray
    cluster (needs the optional 'scale' extra, Ray Data; the key file and the model folder must be at the
    same paths on every node; see docs/scale.md)."""
    from medcloak.errors import MedcloakError, printable
    from medcloak.io.limits import Limits
    from medcloak.keys import Key
    from medcloak.obfuscation.batch import obfuscate_tree

    key = Key.load(key_file)
    limits = Limits(max_frame_pixels=max_frame_pixels, max_file_pixels=max_file_pixels)
    if labels is not None:  # check labels.csv before any work
        from medcloak.obfuscation.cloud_labels import check_hospital_labels

        for w in check_hospital_labels(labels, allow_duplicates=allow_duplicates, allow_split_leak=allow_split_leak):
            typer.secho(f"warning: {printable(w)}", fg="yellow", err=True)
    if model is None and scheme in (None, "paper"):
        typer.secho("WARNING: no VAE model: mapping only (weaker: pass --model from 'medcloak fit')",
                    fg="yellow", err=True)
    if keep_names:
        typer.secho("WARNING: --keep-names: output folders and file names mirror the inputs and reach the cloud "
                    "(patient names, record numbers and dates in paths are identifying)", fg="yellow", err=True)
    common = dict(model_dir=model, workers=workers, fmt=fmt, batch_size=batch_size, progress=progress,
                  keep_names=keep_names, names=names, limits=limits, burned_in=burned_in, mask_border=mask_border,
                  mask_regions=tuple(mask_region or ()), repair_manifest=repair_manifest, scheme=scheme,
                  png_encoding=png)
    if engine == "ray":
        from medcloak.obfuscation.ray_engine import DEFAULT_CPU_ISA, obfuscate_tree_ray

        summary = obfuscate_tree_ray(in_path, out_dir, key_file=key_file, address=address,
                                     cpu_isa=cpu_isa or DEFAULT_CPU_ISA, **common)
    elif engine == "local":
        if address is not None:
            raise MedcloakError("--address needs --engine ray")
        extra = None
        if cpu_isa is not None:
            from medcloak.obfuscation.cpu_pin import pin_process

            extra = {"cpu": pin_process(cpu_isa)}
        summary = obfuscate_tree(in_path, out_dir, key=key, manifest_extra=extra, **common)
    else:
        raise MedcloakError(f"engine must be local or ray, got {engine!r}")
    for rel, message in summary.warnings:
        typer.secho(f"warning: {printable(message)}", fg="yellow", err=True)
    for rel, message in summary.errors:
        typer.secho(f"failed: {printable(message if rel in message else f'{rel}: {message}')}", fg="red", err=True)
    mode = (("no VAE model: mapping only" if scheme in (None, "paper") else f"scheme {scheme}, untrained")
            if summary.map_only else f"model {summary.model_fingerprint[:16]}")
    where = f"; names {summary.names} (keep it at the hospital)" if summary.names is not None else ""
    typer.echo(f"{summary.line()}; key {key.short_fingerprint}; {mode}; manifest {summary.manifest}{where}")
    if labels is not None:
        from medcloak.obfuscation.cloud_labels import write_cloud_labels

        n, out_csv = write_cloud_labels(labels, in_path, out_dir, key=key, summary=summary,
                                        allow_duplicates=allow_duplicates, allow_split_leak=allow_split_leak)
        typer.echo(f"wrote {out_csv} ({n} rows; pseudonymous paths and patient ids)")
    if not summary.ok:
        raise typer.Exit(1)
