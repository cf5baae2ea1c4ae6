"""``medcloak compare``: every scheme and setting through the same study, on one frontier."""

from __future__ import annotations

from pathlib import Path

import typer

from medcloak.cli._app import app

__all__ = ["compare"]


@app.command()
def compare(
    preset: str = typer.Option("demo", "--preset", help="demo (the default setting beside the paper's; "
                               "what make demo runs) | frontier (every scheme) | tiny | COMPARE.toml (a base study and "
                               "setting tables, \\[\\[setting]] in TOML: label, scheme, options, classifier, classifier_options)."),
    out: Path = typer.Option(..., "--out", help="Comparison folder (a rerun resumes every setting's study)."),
    key_file: Path = typer.Option(None, "--key", help="Key file; default: a new key in OUT/secret/key.json, "
                                  "shared by every setting."),
    force: bool = typer.Option(False, "--force", help="Discard a setting's results made with another "
                               "configuration or key."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars and stage lines."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Settings run at once, one process each (2 on a 2-core "
                             "machine halves the wall time; progress bars are then off)."),
) -> None:
    """Run every setting (scheme + options + cloud model) as a cached study in OUT/settings/ and write
    the frontier (frontier.csv, frontier.json, figures/frontier.png) and OUT/report.html."""
    from medcloak.report.frontier import verdict
    from medcloak.study.compare import frontier_rows, load_compare, run_compare

    config = load_compare(preset)
    report = run_compare(config, out, force=force, progress=progress, key_file=key_file, jobs=jobs)
    def fmt(v) -> str:
        return "-" if v is None else f"{v:.3f}"

    for r in frontier_rows(out, config):
        v = verdict(r)
        missed = ", ".join(k for k, ok in v.items() if ok is False and k != "all")
        typer.echo(f"{r['label']:<22} view acc {fmt(r['view_acc'])}  T0 Dice {fmt(r['t0_dice'])}  strongest re-ID "
                   f"{fmt(r['strongest_reid'])}  {'MEETS the target' if v['all'] else 'misses: ' + missed}")
    typer.echo(f"report: {report}")
