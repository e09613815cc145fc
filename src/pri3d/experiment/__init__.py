"""The paper's protocol: methods x label fractions x seeds, each cell cached and resumable.

An experiment config (YAML, see ``configs/``) names the data (or synthetic-generator settings),
``pri3d prepare`` options, a pre-training preset with per-method overrides, a fine-tuning preset, the
methods, fractions and seeds. :func:`run_experiment` runs:

1. data: the labelled dataset (generated when ``data.synth.scenes > 0``, else ``data.path``); its
   ``train`` split is fine-tuned on (a label fraction of it), its ``val`` split scores every run and
   is where settings are chosen. Optionally a separate unlabelled pre-training dataset
   (``data.pretrain_synth``, its own generator seed) and a test set (``data.test_synth`` or
   ``data.test_path``, yet another seed), scored only when ``test: true`` (once, at the end);
2. prepare: mine pairs and geometry of the pre-training data;
3. pretrain: one run per pre-training method (``trivial``, ``mocov2``, ``view``, ``geo``,
   ``view+geo``), as in the paper. With ``pretrain.stage1`` (e.g. ``mocov2``), that method runs first
   and every other pre-training method starts from its encoder (the paper's two-stage pipeline,
   Table 4);
4. finetune: one run per (method, fraction, seed); ``scratch`` and ``imagenet`` need no
   pre-training; with ``test: true`` each final model is also scored on the test set;
5. report: ``results.json``, ``table.md`` (Table-1 shape: mean +- std across seeds, delta against the
   reference method, paired deltas per seed) and ``curve.png`` (Figure-5 shape: score against label
   fraction).

Modules: :mod:`.config` (the experiment config), :mod:`.cells` (the cached cells and their typed
configs), :mod:`.run` (the driver), :mod:`.report` (tables and the curve), :mod:`.check` (``--check``).

Caching: every cell lives in its own folder named by a hash of everything that determines it (its
resolved settings and the hashes of its inputs) and is finished when its ``done.json`` exists. A
re-run skips finished cells, so a killed experiment resumes where it stopped, and changing a setting
re-runs only the cells it affects. Pre-training and fine-tuning cells also resume from their own
checkpoints.
"""

from pri3d.experiment.cells import CELL_VERSION, Cell, pretrain_spec
from pri3d.experiment.check import check_experiment
from pri3d.experiment.config import ALL_METHODS, PRETRAIN_METHODS, ExperimentConfig, load_experiment
from pri3d.experiment.report import method_label, pretrain_table
from pri3d.experiment.run import run_experiment

__all__ = [
    "ExperimentConfig",
    "load_experiment",
    "run_experiment",
    "check_experiment",
    "PRETRAIN_METHODS",
    "ALL_METHODS",
    "CELL_VERSION",
    "Cell",
    "pretrain_spec",
    "method_label",
    "pretrain_table",
]
