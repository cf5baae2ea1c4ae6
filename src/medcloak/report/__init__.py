"""Every figure and the HTML report.

* :mod:`.results` -- :class:`StudyResults`, what a study hands the report;
* :mod:`.html` -- :func:`write_report`: ``report.html``, ``metrics.json``, CSV tables;
* :mod:`.figures` -- the study's figures (sample grid, curves, ROC, privacy-utility, T1 curve);
* :mod:`.attack_grid` -- the attack grid (``medcloak attack``);
* :mod:`.utility_figure` -- the utility grid's privacy-utility figure (benchmarks).
"""

from medcloak.report.results import StudyResults

__all__ = ["StudyResults", "write_report"]


def write_report(out, results):
    """:func:`medcloak.report.html.write_report` (imported on first use: it needs matplotlib)."""
    from medcloak.report.html import write_report as _write

    return _write(out, results)
