"""Every scheme and setting through the same study: :func:`run_compare` and its presets.

A comparison is a base :class:`~medcloak.study.config.StudyConfig` (data, recipe, attacker
budget) and a list of :class:`Setting` s (a scheme, its options, the cloud's model family). Each
setting runs as one cached study in ``OUT/settings/<slug>`` with ONE shared key
(``OUT/secret/key.json`` or ``--key``), so every setting sees the same frames, split, recipe
and attackers, and a rerun skips what is done. The rows of every setting's ``metrics.json`` are
then read into one table (:func:`frontier_rows`) and :mod:`medcloak.report.frontier` draws the
frontier and writes ``OUT/report.html``. After each study, every registered attack beyond the
study's threats that fits the scheme (the scheme-specific attacks) runs on that study's own
artefacts (:func:`extra_attacks`), so each row's "strongest attack" includes the attack made
for its scheme.

Presets (:data:`COMPARE_PRESETS`):

``demo`` (what ``make demo`` runs)
    The default setting (:data:`medcloak.obfuscation.scheme.DEFAULT_SCHEME`) beside the paper's
    scheme at 256 levels, on the demo study's recipe with the comparison's lighter attacker (64 px,
    256 semi-synthetic frames of 32 patients, classifier of at most 25 epochs with patience 8,
    120-step U-Nets, T0 at most 200 steps, 96 own frames, T1 with 10 pairs, T4 with 4 restarts,
    5 victim keys). ``make demo`` runs it with ``--jobs 2`` (one setting per core).
``frontier``
    The same base (with the short recipe it was measured with, at most 15 epochs, and T4's 8
    restarts) over the paper's scheme at 256 and 16 levels, the map alone at 16 levels, and
    every other registered scheme in a setting its cloud model can learn. About 3-5 minutes per
    setting on 2 CPU cores.
``tiny``
    two settings on the ``tiny`` study: for tests.

A TOML file (``--preset FILE``): ``base`` (a study preset name) with optional study tables as in
:func:`medcloak.study.config.load_config`, then ``[[setting]]`` tables with ``label``, ``scheme``,
``options`` (inline table), ``classifier`` and ``classifier_options``.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from medcloak.errors import MedcloakError
from medcloak.study.config import SECTIONS, StudyConfig, preset

__all__ = ["Setting", "CompareConfig", "COMPARE_PRESETS", "compare_preset", "load_compare", "run_compare",
           "frontier_rows", "extra_attacks", "PAPER_FIELDS", "EXTRA_JSON"]

#: Per setting: the registered attacks beyond the study's threats (the scheme-specific ones).
EXTRA_JSON = "extra-attacks.json"

#: Options of the paper's scheme that are study fields (the rest of its config comes from ``[vae]``).
PAPER_FIELDS = ("levels", "order", "latent")


@dataclass(frozen=True)
class Setting:
    """One point of the frontier: a scheme with options and the cloud's model family for it."""

    label: str
    scheme: str = "paper"
    options: dict = field(default_factory=dict)
    classifier: str = "small"
    classifier_options: dict = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """A folder name made of the label."""
        return re.sub(r"[^A-Za-z0-9_.+-]+", "-", self.label).strip("-") or "setting"

    def study_config(self, base: StudyConfig) -> StudyConfig:
        """``base`` with this setting's scheme, options and classifier."""
        common = {"name": self.label, "scheme": self.scheme, "classifier": self.classifier,
                  "classifier_options": dict(self.classifier_options)}
        if self.scheme == "paper":
            bad = sorted(set(self.options) - set(PAPER_FIELDS))
            if bad:
                raise MedcloakError(f"setting {self.label!r}: the paper scheme takes {', '.join(PAPER_FIELDS)} "
                                    f"here (VAE settings come from the base), not {', '.join(bad)}")
            return replace(base, scheme_options={}, **common, **self.options)
        return replace(base, scheme_options=dict(self.options), **common)


@dataclass(frozen=True)
class CompareConfig:
    """A base study and the settings compared on it."""

    name: str
    base: StudyConfig
    settings: tuple[Setting, ...]

    def __post_init__(self) -> None:
        if not self.settings:
            raise MedcloakError("a comparison needs at least one setting")
        slugs = [s.slug for s in self.settings]
        if len(set(slugs)) != len(slugs):
            raise MedcloakError(f"setting labels must differ (folder names {slugs})")
        for s in self.settings:
            s.study_config(self.base)  # validates every setting up front

    def to_dict(self) -> dict:
        return {"name": self.name, "base": self.base.to_dict(),
                "settings": [s.__dict__ | {"slug": s.slug} for s in self.settings]}


def _pair_settings() -> tuple[Setting, ...]:
    """The default setting (:data:`medcloak.obfuscation.scheme.DEFAULT_SCHEME`) beside the paper's."""
    from medcloak.obfuscation.scheme import DEFAULT_LABEL, DEFAULT_OPTIONS, DEFAULT_SCHEME

    return (Setting(f"default: {DEFAULT_LABEL}", DEFAULT_SCHEME, dict(DEFAULT_OPTIONS), DEFAULT_CLASSIFIER),
            Setting("paper L256", "paper", {"levels": 256}))


#: The cloud's model family for the default setting: the small CNN (its 8x8 release clipped to [0, 1]),
#: because it is the family that learns the originals at this size (the MLP of the frontier row did not,
#: so that row's utility said nothing).
DEFAULT_CLASSIFIER = "small"


def _frontier_settings() -> tuple[Setting, ...]:
    from medcloak.obfuscation.scheme import scheme_names

    out = [Setting("paper L256", "paper", {"levels": 256}),
           Setting("paper L16", "paper", {"levels": 16}),
           Setting("map only L16", "paper", {"levels": 16, "order": "map-only"})]
    extra = {
        "blockwise": [Setting("blockwise p8", "blockwise", {"block": 8}, "vit", {"patch": 8}),
                      Setting("blockwise+map p8 L16", "blockwise", {"block": 8, "levels": 16}, "vit",
                              {"patch": 8, "input_mode": "level-embedding", "levels": 16})],
        "randenc": [Setting("randenc p8", "randenc", {"patch": 8}, "vit", {"tokens": True, "position": "none"})],
        "pixelate": [Setting("pixelate b8", "pixelate", {"cell": 8}, "mlp"),
                     Setting("pixelate b8 eps1", "pixelate", {"cell": 8, "epsilon": 1.0}, "mlp")],
        "blur": [Setting("blur s2", "blur", {"sigma": 2.0})],
        "svd": [Setting("svd", "svd", {}, "mlp")],
        "bottleneck": [Setting("bottleneck d4 (labels)", "bottleneck", {"downsample": 4}, "mlp")],
    }
    for name, settings in extra.items():
        if name in scheme_names():
            out += settings
    return tuple(out)


def compare_preset(name: str) -> CompareConfig:
    """The comparison preset ``name`` (``demo``, ``frontier`` or ``tiny``)."""
    light = {"n_frames": 256, "attack_steps": 120, "t0_steps": 200, "n_attacker": 96, "t1_n": (10,),
             "reader_frames": 6}
    if name == "demo":
        # a recipe with room to learn (the study's 15 epochs / patience 5 stopped runs early at 128 px)
        base = replace(preset("demo"), name="demo", t4_restarts=4, max_epochs=25, patience=8, **light)
        return CompareConfig("demo", base, _pair_settings())
    if name == "frontier":
        base = replace(preset("demo"), name="compare-frontier", max_epochs=15, patience=5, **light)
        return CompareConfig("frontier", base, _frontier_settings())
    if name == "tiny":
        base = replace(preset("tiny"), threats=("T0", "T1", "T4"))
        return CompareConfig("tiny", base, (Setting("paper L256", "paper", {"levels": 256}),
                                            Setting("map only L16", "paper", {"levels": 16, "order": "map-only"})))
    raise MedcloakError(f"unknown comparison preset {name!r}; choose {', '.join(COMPARE_PRESETS)} or a .toml file")


COMPARE_PRESETS = ("demo", "frontier", "tiny")


def load_compare(preset_or_path: str | os.PathLike) -> CompareConfig:
    """A comparison preset by name, or a TOML file (see the module docstring)."""
    text = os.fspath(preset_or_path)
    if text in COMPARE_PRESETS:
        return compare_preset(text)
    path = Path(text)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MedcloakError(f"unknown comparison preset {text!r}; choose {', '.join(COMPARE_PRESETS)} or a "
                            ".toml file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MedcloakError(f"cannot read the comparison file ({exc})", path) from None
    base = preset(str(doc.get("base", "demo")))
    changes = {}
    for table, keys in SECTIONS.items():
        for key, value in (doc.get(table) or {}).items():
            if key not in keys:
                raise MedcloakError(f"unknown key '{table}.{key}'", path)
            changes[keys[key]] = value
    settings = []
    for i, s in enumerate(doc.get("setting") or []):
        unknown = sorted(set(s) - {"label", "scheme", "options", "classifier", "classifier_options"})
        if unknown or "label" not in s:
            raise MedcloakError(f"setting {i + 1}: needs a label; unknown key(s) {', '.join(unknown) or '-'}", path)
        settings.append(Setting(**s))
    try:
        return CompareConfig(str(doc.get("name", path.stem)), replace(base, **changes), tuple(settings))
    except MedcloakError as exc:
        raise MedcloakError(exc.reason, path) from None


def _range(name: str, row: dict | None, score: str) -> dict:
    """``<name>_min``, ``<name>_max`` and ``<name>_keys`` of an attack row scored over victim keys
    (:func:`medcloak.attacks.base.over_keys`); a row of one key has its value as both ends."""
    if row is None or row.get(score) is None:
        return {f"{name}_min": None, f"{name}_max": None, f"{name}_keys": None}
    lo, hi = row.get(f"{score}_min"), row.get(f"{score}_max")
    return {f"{name}_min": row[score] if lo is None else lo, f"{name}_max": row[score] if hi is None else hi,
            f"{name}_keys": int(row.get("n_keys") or 1)}


def _held_and_broken(attacks: list[dict]) -> dict:
    """Which threats the setting held off and which beat a bar of [target] (by any variant): a
    reconstruction gaining more than 0.05 SSIM over the prior or re-identifying more than 10 % of
    test frames; a vessel segmentation (T0) above 0.30 Dice or 0.05 above the location prior.
    Rows that peeked at the truth (oracle) do not count. Threat names in attack order."""
    from medcloak.report.frontier import privacy_bars

    held, broken = [], []
    for r in attacks:
        t = r["threat"]
        if t in ("obfuscated", "prior") or "oracle" in (r.get("variant") or ""):
            continue
        if r.get("ssim") is not None:
            bars = privacy_bars(d_ssim=r.get("d_ssim") or 0.0, reid=r.get("reid_top1") or 0.0)
        elif r.get("vessel_dice") is not None:
            bars = privacy_bars(dice=r["vessel_dice"], prior_dice=r.get("prior_vessel_dice"))
        else:
            continue
        bad = any(ok is False for ok in bars.values())
        if bad and t not in broken:
            broken.append(t)
        elif not bad and t not in held:
            held.append(t)
    return {"held": [t for t in held if t not in broken], "broken_by": broken}


def frontier_rows(out: str | os.PathLike, config: CompareConfig) -> list[dict]:
    """One row per setting from its study's ``metrics.json`` (see :mod:`medcloak.report.frontier`).

    Figures scored over several victim keys (T0, T4, the scheme-specific ciphertext-only attacks)
    are the mean over keys, with ``*_min`` / ``*_max`` / ``*_keys`` beside them; the strongest
    attack is chosen by its mean. ``prior_dice`` is the location prior's vessel Dice."""
    from medcloak.obfuscation.scheme import get_scheme

    rows = []
    for s in config.settings:
        sdir = Path(out) / "settings" / s.slug
        m = json.loads((sdir / "metrics.json").read_text(encoding="utf-8"))
        u, attacks = m["utility"], list(m["attacks"]["rows"])
        if (sdir / EXTRA_JSON).is_file():  # the scheme-specific attacks, scored the same way
            extra = json.loads((sdir / EXTRA_JSON).read_text(encoding="utf-8"))
            attacks += [r for r in extra["rows"] if r["threat"] not in ("obfuscated", "prior", "prior-location")]
        recon = [r for r in attacks if r.get("ssim") is not None and r["threat"] not in ("obfuscated", "prior")
                 and "oracle" not in (r.get("variant") or "")]  # rows that peeked at the truth do not count
        by_ssim = max(recon, key=lambda r: r.get("d_ssim") or -9, default=None)
        by_reid = max(recon, key=lambda r: r.get("reid_top1") or -9, default=None)
        t0 = next((r for r in attacks if r["threat"] == "T0"), None)
        prior = next((r for r in attacks if r["threat"] == "prior"), {})
        location = next((r for r in attacks if r["threat"] == "prior" and r.get("variant") == "location prior"), {})
        st = u.get("stenosis") or {}
        rows.append({
            "label": s.label, "slug": s.slug, "scheme": s.scheme, "options": json.dumps(s.options, sort_keys=True),
            "classifier": s.classifier, "uses_labels": bool(get_scheme(s.scheme).uses_labels),
            "view_acc_original": u["original"]["accuracy"]["value"],
            "view_acc": u["obfuscated"]["accuracy"]["value"],
            "view_acc_low": u["obfuscated"]["accuracy"]["ci_low"], "view_acc_high": u["obfuscated"]["accuracy"]["ci_high"],
            "stenosis_acc_original": (st.get("original") or {}).get("accuracy", {}).get("value"),
            "stenosis_acc": (st.get("obfuscated") or {}).get("accuracy", {}).get("value"),
            "t0_dice": None if t0 is None else t0.get("vessel_dice"),
            **_range("t0_dice", t0, "vessel_dice"),
            # the vessel-Dice baseline is the location prior (the attacker's mean vessel mask), not the mean frame
            "prior_dice": location.get("vessel_dice", prior.get("vessel_dice")), "prior_ssim": prior.get("ssim"),
            "prior_reid": prior.get("reid_top1"),
            "ssim_obfuscated": m["obfuscation"].get("test_ssim_original_obfuscated"),
            "strongest_ssim_attack": None if by_ssim is None else f"{by_ssim['threat']} {by_ssim.get('variant') or ''}".strip(),
            "strongest_ssim": None if by_ssim is None else by_ssim.get("ssim"),
            "strongest_d_ssim": None if by_ssim is None else by_ssim.get("d_ssim"),
            **_range("strongest_ssim", by_ssim, "ssim"),
            "strongest_reid_attack": None if by_reid is None else f"{by_reid['threat']} {by_reid.get('variant') or ''}".strip(),
            "strongest_reid": None if by_reid is None else by_reid.get("reid_top1"),
            **_range("strongest_reid", by_reid, "reid_top1"),
            "threats_run": sorted({r["threat"] for r in attacks} - {"obfuscated", "prior"}),
            **_held_and_broken(attacks),
        })
    return rows


def extra_attacks(out: str | os.PathLike, setting: Setting, base: StudyConfig, key, *, progress: bool = True) -> Path:
    """Run every registered attack beyond the study's threats that fits the setting's scheme (the
    scheme-specific attacks: ``T1-secret``, ``jigsaw``, ``matching``, ...) on the setting's own
    study artefacts (its frames, fitted scheme and obfuscations; nothing is refitted), scored like
    the study's attacks; write ``settings/<slug>/extra-attacks.json``. Skipped when that file
    already names this study's config hash and the same attacks."""
    import numpy as np

    from medcloak.attacks.base import attack_names
    from medcloak.attacks.runner import AttackVictim, run_attacks
    from medcloak.io.frameset import FrameSet
    from medcloak.obfuscation.scheme import load_scheme
    from medcloak.study.config import config_hash
    from medcloak.study.steps import attack_config

    cfg = setting.study_config(base)
    sdir = Path(out) / "settings" / setting.slug
    threats = [t for t in attack_names() if t not in cfg.threats]
    path, chash = sdir / EXTRA_JSON, config_hash(cfg)
    if path.is_file():
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("meta", {}).get("study_config_hash") == chash and doc["meta"].get("asked") == threats:
            return path
    data = FrameSet.load(sdir / "stages" / "data" / "frameset.npz")
    scheme = load_scheme(sdir / "secret" / "model", key, expect=cfg.scheme)
    with np.load(sdir / "stages" / "obfuscate" / "obfuscated.npz", allow_pickle=False) as z:
        obfuscated = z["obfuscated"]
    victim = AttackVictim.from_frameset(data, scheme, obfuscated=obfuscated, pool_ciphertexts=True,
                                        description=f"comparison setting {setting.label}: scheme-specific attacks")
    res = run_attacks(victim, threats, config=attack_config(cfg), n_figure=cfg.reader_frames, progress=progress)
    res.meta.update(study_config_hash=chash, asked=threats)
    res.to_json(path)
    return path


def _run_setting(config: CompareConfig, s: Setting, out: Path, force: bool, progress: bool, key_file) -> None:
    """One setting: its cached study, then the scheme-specific attacks on its artefacts."""
    from medcloak.keys import Key
    from medcloak.study.run import run_study

    run_study(s.study_config(config.base), out / "settings" / s.slug, force=force, progress=progress,
              key_file=key_file)
    extra_attacks(out, s, config.base, Key.load(key_file), progress=progress)


def run_compare(config: CompareConfig, out: str | os.PathLike, *, force: bool = False, progress: bool = True,
                key_file: str | os.PathLike | None = None, jobs: int = 1) -> Path:
    """Run (or resume) every setting's study in ``OUT/settings/`` and write the comparison report.

    ``jobs`` > 1 runs that many settings at once, each in its own process (the studies are
    independent: same key, their own folders); results are the same as one at a time.

    Returns
    -------
    Path
        ``OUT/report.html``.
    """
    from medcloak.keys import Key
    from medcloak.report.frontier import write_compare_report

    out = Path(out)
    try:
        (out / "secret").mkdir(parents=True, mode=0o700, exist_ok=True)
        os.chmod(out / "secret", 0o700)
    except OSError as exc:
        raise MedcloakError(f"cannot create the comparison folder: {exc.strerror}", out) from None
    if key_file is None:
        key_file = out / "secret" / "key.json"
        if not Path(key_file).exists():
            Key.generate().save(key_file)
    n = len(config.settings)
    if jobs <= 1 or n == 1:
        for i, s in enumerate(config.settings, 1):
            if progress:
                print(f"[compare] setting {i}/{n}: {s.label}", flush=True)
            _run_setting(config, s, out, force, progress, key_file)
    else:  # one process per setting (each study runs on its own threads), quiet bars, a line per finish
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")  # torch state is not fork-safe
        with ProcessPoolExecutor(max_workers=min(jobs, n), mp_context=ctx) as pool:
            futures = {pool.submit(_run_setting, config, s, out, force, False, key_file): s for s in config.settings}
            if progress:
                print(f"[compare] {n} settings on {min(jobs, n)} processes (progress bars off)", flush=True)
            for done, fut in enumerate(as_completed(futures), 1):
                fut.result()  # a setting's error stops the comparison with its own message
                if progress:
                    print(f"[compare] finished {done}/{n}: {futures[fut].label}", flush=True)
    rows = frontier_rows(out, config)
    return write_compare_report(out, config, rows)
