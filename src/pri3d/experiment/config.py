"""An experiment's config: the data, the pre-training and fine-tuning presets with their overrides, the
methods, label fractions and seeds (``configs/*.yaml``), loaded and validated by :func:`load_experiment`.

The methods are ``scratch`` and ``imagenet`` (no pre-training) and every registered pre-training mode
(:data:`pri3d.pretrain.modes.MODES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pri3d.config import build
from pri3d.errors import ConfigError
from pri3d.pretrain.modes import MODES

__all__ = [
    "SynthSpec",
    "DataSpec",
    "PretrainSpec",
    "FinetuneSpec",
    "ProbeSpec",
    "AwarenessSpec",
    "ScalingSpec",
    "ExperimentConfig",
    "load_experiment",
    "resolve_path",
    "out_dir",
    "PRETRAIN_METHODS",
    "ALL_METHODS",
    "pretrain_seed",
]

PRETRAIN_METHODS = tuple(MODES)  # the registered pre-training modes (trivial, mocov2, view, geo, view+geo)
ALL_METHODS = ("scratch", "imagenet") + PRETRAIN_METHODS  # scratch and imagenet need no pre-training


@dataclass
class SynthSpec:
    scenes: int = 0  # > 0: generate this many scenes with `pri3d synth`
    frames_per_scene: int = 30
    seed: int = 0
    resolution: list[int] = field(default_factory=lambda: [120, 160])
    workers: int = 2
    materials: str = "shared"  # object colours/textures: one palette for all classes, or class-typical

    def check(self, where: str) -> None:
        """The generator's own limits, for a dataset that will be generated (``scenes > 0``)."""
        from pri3d.data.synth.writer import parse_resolution

        if self.scenes < 0:
            raise ConfigError(f"{where}.scenes must be >= 0 (0 = not generated), got {self.scenes}")
        if self.scenes == 0:
            return
        if self.frames_per_scene < 1 or self.workers < 1 or self.seed < 0:
            raise ConfigError(
                f"{where}: frames_per_scene and workers must be >= 1 and seed >= 0, got "
                f"{self.frames_per_scene}, {self.workers}, {self.seed}"
            )
        try:
            parse_resolution(self.resolution)
        except ConfigError as e:
            raise ConfigError(f"{where}.{e}") from e


@dataclass
class DataSpec:
    synth: SynthSpec = field(default_factory=SynthSpec)  # the labelled data (and the pre-training data
    # unless pretrain_synth is set)
    path: str = ""  # pre-training RGB-D scans (used when synth.scenes == 0)
    format: str | None = None
    pretrain_split: str = "train"  # pre-training scenes: a split name (<dataset>/splits/<name>.txt) or a file
    finetune_path: str = ""  # labelled downstream dataset; "" = the same dataset
    finetune_format: str | None = None
    # Unlabelled pre-training scans from their own generator seed (scenes > 0); pre-training then uses
    # this dataset's pretrain_split, and its val split for the label-free matching recall.
    pretrain_synth: SynthSpec = field(default_factory=SynthSpec)
    # The test set, scored only when `test: true`: generated (scenes > 0, its own seed) or a path.
    test_synth: SynthSpec = field(default_factory=SynthSpec)
    test_path: str = ""
    test_format: str | None = None


@dataclass
class PretrainSpec:
    preset: str = "cpu-small"
    overrides: list[str] = field(default_factory=list)
    per_method: dict = field(default_factory=dict)  # method -> list of extra overrides
    presets: dict = field(default_factory=dict)  # method -> preset replacing `preset` (e.g. mocov2: mocov2)
    stage1: str = ""  # a pre-training method (e.g. mocov2) whose encoder every other one starts from
    # Pre-training seeds (train.seed of every pre-training run, Stage I included). Fine-tuning seed number
    # i starts from pre-training seed seeds[i % len(seeds)] of its method, so with as many pre-training
    # seeds as fine-tuning seeds the table's spread covers both stages.
    seeds: list[int] = field(default_factory=lambda: [0])


@dataclass
class FinetuneSpec:
    task: str = "semseg"
    preset: str = "cpu-small-semseg"
    overrides: list[str] = field(default_factory=list)
    # method -> extra overrides. MoCoV2 trains the encoder only, so only the encoder is transferred.
    per_method: dict = field(default_factory=lambda: {"mocov2": ["model.transfer=encoder"]})
    enabled: bool = True  # false: no fine-tuning cells (e.g. a probe-only experiment)
    metric: str = "miou"  # key of the fine-tuning results used in the table
    # semseg: measure the table's floor on the same splits (majority class; a position + coarse-colour
    # lookup table fitted on each seed's labelled frames) and list the classes with no labelled pixel
    floors: bool = True


@dataclass
class ProbeSpec:
    # The frozen-feature readout (pri3d.probe, semantic segmentation): a linear classifier on the frozen
    # backbone's per-pixel features, fitted on each fine-tuning seed's labelled frames (the same subset the
    # fine-tuning gets) and scored on the validation scenes (and the test set when it is scored), from the
    # weights of the paired pre-training seed; scratch is the random-init network of the same arch.
    enabled: bool = False
    pixels_per_frame: int = 512  # fit pixels drawn per labelled frame


@dataclass
class ScalingSpec:
    """The scaling series (:mod:`pri3d.experiment.scaling`), read out by the probe: every method of
    ``methods`` pre-trained again from the same Stage-I weights for each step count of ``steps`` (the
    config's own count is the table's cell, reused), probed on the validation scenes with the probe seeds
    whose pre-training seed is in ``pretrain_seeds``; the report gives the paired gain over Stage I alone
    per step count (``scaling.png``)."""

    steps: list[int] = field(default_factory=list)  # [] = no scaling series
    methods: list[str] = field(default_factory=list)  # pre-training methods other than pretrain.stage1
    pretrain_seeds: list[int] = field(default_factory=list)  # [] = the first of pretrain.seeds

    def check(self, cfg: ExperimentConfig) -> None:
        if not self.steps:
            return
        if any(not isinstance(n, int) or n < 1 for n in self.steps) or len(set(self.steps)) != len(self.steps):
            raise ConfigError(f"scaling.steps must be distinct step counts >= 1, got {self.steps}")
        st = cfg.pretrain.stage1
        if not st or st not in cfg.methods or not cfg.probe.enabled:
            raise ConfigError(
                "scaling (the gain over Stage I alone on the probe) needs pretrain.stage1 among methods and "
                "probe.enabled: true"
            )
        bad = [m for m in self.methods if m not in PRETRAIN_METHODS or m == st]
        if bad or not self.methods:
            raise ConfigError(
                f"scaling.methods must be pre-training methods other than Stage I ({st}), got {self.methods}"
            )
        if not set(self.pretrain_seeds) <= set(cfg.pretrain.seeds):
            raise ConfigError(f"scaling.pretrain_seeds {self.pretrain_seeds} must be among pretrain.seeds")


@dataclass
class AwarenessSpec:
    """The real-capture 3D-awareness experiment (:mod:`pri3d.experiment.awareness`): pre-train on one
    capture, read the frozen features out on another that pre-training never saw. Set ``captures`` to run
    it instead of the semantic-segmentation protocol (the ``data``, ``finetune`` and ``probe`` sections are
    then not used)."""

    captures: dict = field(default_factory=dict)  # name -> RGB-D dataset path (any format `pri3d info` reads)
    directions: list = field(default_factory=list)  # [pre-training capture, probed capture] name pairs
    # methods pre-trained a second time from the Stage-I weights (pretrain.stage1): the rows "X on Stage I".
    # The methods of `methods` start from random weights here.
    stage1_methods: list = field(default_factory=list)
    fit_part: list = field(default_factory=lambda: [0.0, 0.5])  # the probed capture's frames the heads fit on
    test_part: list = field(default_factory=lambda: [0.6, 1.0])  # ... and score on (a gap between the two)
    max_frames: int = 48  # fit and test frames each, evenly spaced over their part
    pixels_per_frame: int = 512  # fit pixels drawn per fit frame (depth and normal probes)
    pairs_per_bin: int = 60  # matching: at most this many of the probed capture's pairs per rotation bin
    points: int = 1024  # matching: ground-truth correspondences sampled per pair

    def check(self, methods: list[str], stage1: str) -> None:
        for name, path in self.captures.items():
            if not isinstance(name, str) or not isinstance(path, str) or not path:
                raise ConfigError(f"awareness.captures: name -> dataset path, got {name!r}: {path!r}")
        if not self.directions:
            raise ConfigError("awareness.directions: give at least one [pre-training, probed] pair of capture names")
        for d in self.directions:
            if not isinstance(d, list) or len(d) != 2 or any(c not in self.captures for c in d) or d[0] == d[1]:
                raise ConfigError(
                    f"awareness.directions: each must be [pre-training, probed], two different names of "
                    f"awareness.captures ({', '.join(self.captures)}), got {d!r}"
                )
        for part in ("fit_part", "test_part"):
            lo_hi = getattr(self, part)
            if len(lo_hi) != 2 or not 0 <= lo_hi[0] < lo_hi[1] <= 1:
                raise ConfigError(f"awareness.{part} must be [lo, hi] with 0 <= lo < hi <= 1, got {lo_hi}")
        if self.fit_part[1] > self.test_part[0] and self.test_part[1] > self.fit_part[0]:
            raise ConfigError(f"awareness.fit_part {self.fit_part} and test_part {self.test_part} overlap")
        for k in ("max_frames", "pixels_per_frame", "pairs_per_bin", "points"):
            if getattr(self, k) < 1:
                raise ConfigError(f"awareness.{k} must be >= 1, got {getattr(self, k)}")
        bad = [m for m in self.stage1_methods if m not in PRETRAIN_METHODS or m == stage1]
        if bad or (self.stage1_methods and not stage1):
            raise ConfigError(
                f"awareness.stage1_methods {self.stage1_methods}: needs pretrain.stage1 and pre-training methods "
                "other than it"
            )
        if not set(methods) <= {"scratch", *PRETRAIN_METHODS}:
            raise ConfigError(f"the awareness experiment runs scratch and pre-training methods, got {methods}")


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    out: str = "runs/experiment"
    data: DataSpec = field(default_factory=DataSpec)
    prepare: dict = field(default_factory=dict)  # keyword options of pri3d.pairs.mine.prepare
    pretrain: PretrainSpec = field(default_factory=PretrainSpec)
    finetune: FinetuneSpec = field(default_factory=FinetuneSpec)
    probe: ProbeSpec = field(default_factory=ProbeSpec)
    awareness: AwarenessSpec = field(default_factory=AwarenessSpec)
    scaling: ScalingSpec = field(default_factory=ScalingSpec)
    methods: list[str] = field(default_factory=lambda: list(ALL_METHODS))
    fractions: list[float] = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8, 1.0])
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    reference: str = "scratch"
    test: bool = False  # also score every final model on the test set (do it once, after choosing settings)
    jobs: int = 1  # cells run in parallel processes (one torch thread each) when > 1; results do not depend on it
    base_dir: str = ""  # relative paths start here ("" = the current directory)

    def validate(self):
        bad = [m for m in self.methods if m not in ALL_METHODS]
        if bad:
            raise ConfigError(f"unknown method(s) {bad}; choose from {', '.join(ALL_METHODS)}")
        if not self.methods:
            raise ConfigError("methods must not be empty")
        for f in self.fractions:
            if not 0 < f <= 1:
                raise ConfigError(f"fractions must be in (0, 1], got {f}")
        if not self.seeds:
            raise ConfigError("seeds must not be empty")
        if self.reference not in self.methods:
            raise ConfigError(f"reference method {self.reference!r} is not in methods")
        if self.awareness.captures:
            self.awareness.check(self.methods, self.pretrain.stage1)
        elif self.data.synth.scenes <= 0 and not self.data.path:
            raise ConfigError("data: set synth.scenes > 0 or a dataset path")
        st = self.pretrain.stage1
        if st and st not in PRETRAIN_METHODS:
            raise ConfigError(
                f"pretrain.stage1 must be a pre-training method ({', '.join(PRETRAIN_METHODS)}), got {st!r}"
            )
        if not self.pretrain.seeds or len(set(self.pretrain.seeds)) != len(self.pretrain.seeds):
            raise ConfigError(f"pretrain.seeds must be a non-empty list of distinct seeds, got {self.pretrain.seeds}")
        if self.probe.enabled and self.finetune.task != "semseg":
            raise ConfigError(
                f"probe.enabled needs finetune.task semseg (the probe's labels), got {self.finetune.task!r}"
            )
        if self.probe.pixels_per_frame < 1:
            raise ConfigError(f"probe.pixels_per_frame must be >= 1, got {self.probe.pixels_per_frame}")
        if not self.finetune.enabled and not self.probe.enabled:
            raise ConfigError("nothing to read out: finetune.enabled and probe.enabled are both false")
        if self.jobs < 1:
            raise ConfigError(f"jobs must be >= 1, got {self.jobs}")
        from pri3d.data.synth.scene import MATERIAL_MODES  # the generator's own list

        for what in ("synth", "pretrain_synth", "test_synth"):
            m = getattr(self.data, what).materials
            if m not in MATERIAL_MODES:
                raise ConfigError(f"data.{what}.materials must be one of {', '.join(MATERIAL_MODES)}, got {m!r}")
            getattr(self.data, what).check(f"data.{what}")
        for spec in ("pretrain", "finetune"):
            per = getattr(self, spec).per_method
            bad = sorted(set(per) - set(ALL_METHODS if spec == "finetune" else PRETRAIN_METHODS))
            if bad:
                raise ConfigError(f"{spec}.per_method names unknown method(s) {bad}; methods: {', '.join(ALL_METHODS)}")
            for m, over in per.items():
                if not isinstance(over, list) or not all(isinstance(o, str) for o in over):
                    raise ConfigError(f"{spec}.per_method.{m} must be a list of key=value overrides, got {over!r}")
        self.scaling.check(self)
        if self.test and self.data.test_synth.scenes <= 0 and not self.data.test_path:
            raise ConfigError("test: true needs a test set (data.test_synth.scenes > 0 or data.test_path)")


def load_experiment(path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load an experiment YAML (+ ``key=value`` overrides) into a validated config."""
    from pri3d.config import apply_overrides, read_yaml_mapping

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: experiment config not found")
    d = apply_overrides(read_yaml_mapping(path), overrides or [])
    return build(ExperimentConfig, d)


def resolve_path(base: str, p: str) -> Path:
    """``p`` as an absolute path; a relative one starts at ``base`` ("" = the current directory)."""
    q = Path(p).expanduser()
    return q if q.is_absolute() else (Path(base or ".") / q).resolve()


def out_dir(cfg: ExperimentConfig) -> Path:
    """The experiment's output folder (``cfg.out``; a relative one starts at ``cfg.base_dir``)."""
    return resolve_path(cfg.base_dir, cfg.out) if not Path(cfg.out).is_absolute() else Path(cfg.out)


def pretrain_seed(cfg: ExperimentConfig, finetune_seed: int) -> int:
    """The pre-training seed whose weights fine-tuning seed ``finetune_seed`` starts from."""
    return cfg.pretrain.seeds[cfg.seeds.index(finetune_seed) % len(cfg.pretrain.seeds)]
