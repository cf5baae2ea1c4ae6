"""``StudyResults``: everything a study produced that its report shows, in one object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["StudyResults"]


@dataclass
class StudyResults:
    """What :func:`medcloak.report.html.write_report` turns into the report folder.

    Attributes
    ----------
    config : StudyConfig
        The study's configuration.
    config_hash : str
    key : mapping
        ``fingerprint``, ``short_fingerprint``, ``source`` -- never the secret.
    stages : mapping
        Each stage's outputs (its done.json payload), by stage name.
    stage_seconds : mapping
        Wall seconds of each stage (when it ran).
    utility : mapping
        The utility stage's ``utility.json``.
    attacks : mapping
        The attack results' ``to_dict()``.
    history : sequence of mapping
        The scheme's training history (the paper's VAE; empty for schemes without training).
    images : mapping of str to ndarray (k, H, W)
        Condition -> the same test frames (``original``, ``vae``, ``obfuscated``, each attack).
    t0_map, prior, masks : ndarray, optional
        T0's vessel probability maps, the prior's reconstructions, the frames' vessel masks.
    readers : mapping, optional
        ``OUT/readers/summary.json`` (rendered whatever its keys).
    device : str
    threads : int
    """

    config: object
    config_hash: str
    key: Mapping
    stages: Mapping[str, Mapping]
    stage_seconds: Mapping[str, float]
    utility: Mapping
    attacks: Mapping
    history: Sequence[Mapping] = field(default_factory=list)
    images: Mapping[str, np.ndarray] = field(default_factory=dict)
    t0_map: np.ndarray | None = None
    prior: np.ndarray | None = None
    masks: np.ndarray | None = None
    readers: Mapping | None = None
    device: str = "cpu"
    threads: int = 1
