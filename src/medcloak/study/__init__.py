"""The end-to-end study: data -> key -> VAE -> obfuscation -> utility -> attacks -> overhead ->
reader items -> report, each stage cached and resumable.

>>> from medcloak.study import load_config, run_study   # doctest: +SKIP
>>> run_study(load_config("demo"), "runs/demo")          # doctest: +SKIP
PosixPath('runs/demo/report.html')
"""

from medcloak.study.config import PRESETS, StudyConfig, config_hash, load_config, preset
from medcloak.study.run import STAGES, run_study

__all__ = ["StudyConfig", "PRESETS", "STAGES", "preset", "load_config", "config_hash", "run_study"]
