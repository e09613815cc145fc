import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from killed import AFTER_CHECKPOINT, run_killed
from pri3d.cli import main
from pri3d.config import resolve
from pri3d.engine.checkpoint import CheckpointManager, load_checkpoint
from pri3d.engine.logging import read_jsonl
from pri3d.engine.optim import lr_at
from pri3d.errors import ConfigError, InitError, TrainingError
from pri3d.pretrain.config import PretrainConfig
from pri3d.pretrain.loop import train
from pri3d.pretrain.method import Pri3D

STEPS = 20
VIEW = ("mode=view", f"train.steps={STEPS}", "train.eval_every=0", "train.ckpt_every=4", "data.resolution=[32,32]")


def _losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r}


@pytest.fixture(scope="module")
def reference_run(prepared_dir, tmp_path_factory):
    """An uninterrupted 20-step view run (CPU, fixed seed)."""
    out = tmp_path_factory.mktemp("ref")
    cfg = resolve(
        PretrainConfig, "cpu-tiny", [f"data.path={prepared_dir}", f"out={out}", "data.resolution=[32,48]", *VIEW]
    )
    train(cfg)
    return out


def test_same_seed_same_losses_and_kill_9_then_resume_continues_the_curve(reference_run, tiny, tmp_path):
    """A second run with the same seed, in another process, killed with SIGKILL after its step-12
    checkpoint, then resumed: all 20 losses equal the reference run's (the first >= 12 come from the
    independent run, the rest from the resumed one)."""
    # the child dies by SIGKILL right after writing its step-12 checkpoint: no race with a poller, on any machine
    run_killed(["pretrain", "--config", "cpu-tiny", *tiny(tmp_path, *VIEW)], AFTER_CHECKPOINT, 12)
    ckpt = tmp_path / "checkpoints" / "ckpt_00000012.pt"
    assert ckpt.exists()
    killed_at = max(_losses(tmp_path))
    assert 12 <= killed_at < STEPS
    assert main(["pretrain", "--config", "cpu-tiny", "--resume", *tiny(tmp_path, *VIEW)]) == 0
    ref, got = _losses(reference_run), _losses(tmp_path)
    assert sorted(ref) == sorted(got) == list(range(1, STEPS + 1))  # resumed lines replaced, none duplicated
    assert len(set(ref.values())) > 1
    for s in range(1, STEPS + 1):
        assert got[s] == pytest.approx(ref[s], rel=1e-6, abs=1e-6), s
    ck = load_checkpoint(tmp_path / "checkpoints" / f"ckpt_{STEPS:08d}.pt")
    assert ck["step"] == STEPS and ck["format"] == "pri3d-pretrain" and ck["mode"] == "view"
    assert {"model", "backbone", "optimizer", "scheduler", "rng", "config", "arch", "feature_dim"} <= set(ck)
    assert all(k.startswith(("encoder.", "decoder.")) for k in ck["backbone"])
    assert len(CheckpointManager(tmp_path / "checkpoints").paths()) == 3  # keep-last-k


def test_truncated_checkpoint_is_a_clear_error_and_the_previous_one_resumes(reference_run, tiny, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    newest = run / "checkpoints" / f"ckpt_{STEPS:08d}.pt"
    newest.write_bytes(newest.read_bytes()[:5000])
    rc = main(["eval-matching", "--checkpoint", str(newest), "--data", str(tiny(run)[0].split("=", 1)[1])])
    assert rc == 1
    with pytest.warns(UserWarning, match="truncated"):
        state, path = CheckpointManager(run / "checkpoints").latest()
    assert state["step"] == STEPS - 4
    with pytest.warns(UserWarning, match="truncated"):
        train(resolve(PretrainConfig, "cpu-tiny", tiny(run, *VIEW)), resume=True)
    ref, got = _losses(reference_run), _losses(run)
    assert got[STEPS] == pytest.approx(ref[STEPS], rel=1e-6, abs=1e-6)
    assert load_checkpoint(newest)["step"] == STEPS  # rewritten whole


def test_nan_loss_stops_with_the_step_and_writes_no_checkpoint(tiny, tmp_path, monkeypatch):
    real = Pri3D.forward
    calls = {"n": 0}

    def poisoned(self, batch):
        calls["n"] += 1
        losses = real(self, batch)
        if calls["n"] == 3:
            losses["view"] = losses["view"] * float("nan")
        return losses

    monkeypatch.setattr(Pri3D, "forward", poisoned)
    with pytest.raises(TrainingError, match="non-finite loss at step 3"):
        train(resolve(PretrainConfig, "cpu-tiny", tiny(tmp_path, "mode=view", "train.steps=6", "train.eval_every=0")))
    names = [p.name for p in CheckpointManager(tmp_path / "checkpoints").paths()]
    assert names == ["ckpt_00000002.pt"] and not (tmp_path / "backbone.pth").exists()
    ck = load_checkpoint(tmp_path / "checkpoints" / names[0])
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())


def test_a_wall_clock_guard_that_fires_says_so_and_resume_finishes_the_planned_steps(tiny, tmp_path, capsys):
    # 1e-9 minutes (60 ns) have always passed after one training step, on any machine and under any load
    over = ("mode=view", "train.steps=5", "train.eval_every=0", "train.ckpt_every=100")
    summary = train(resolve(PretrainConfig, "cpu-tiny", tiny(tmp_path, *over, "train.max_minutes=1.0e-9")))
    assert summary["stopped_early"] and (summary["steps"], summary["steps_planned"]) == (1, 5)
    err = capsys.readouterr().err
    assert "WARNING: the wall-clock guard train.max_minutes=1e-09 stopped the run at step 1 of 5" in err
    assert "**cut short**" in (tmp_path / "report.md").read_text()
    summary = train(resolve(PretrainConfig, "cpu-tiny", tiny(tmp_path, *over, "train.max_minutes=0")), resume=True)
    assert not summary["stopped_early"] and (summary["start_step"], summary["steps"]) == (1, 5)
    assert sorted(_losses(tmp_path)) == [1, 2, 3, 4, 5]
    assert "cut short" not in (tmp_path / "report.md").read_text()


def test_checkpoints_at_every_evaluation_and_the_end_and_every_ckpt_every_steps(tiny, tmp_path):
    """``train.ckpt_every`` means what it means in fine-tuning (issue 23): checkpoints at every evaluation
    (every ``eval_every`` steps) and at the end, and every ``ckpt_every`` steps; 0 (refused before) = none
    in between."""
    over = ("mode=view", "train.steps=5", "train.eval_every=2", "train.keep_checkpoints=9", "train.eval_pairs=2")
    for ckpt_every, steps in (("0", [2, 4, 5]), ("3", [2, 3, 4, 5])):
        out = tmp_path / ckpt_every
        train(resolve(PretrainConfig, "cpu-tiny", tiny(out, *over, f"train.ckpt_every={ckpt_every}")))
        assert [int(p.stem[5:]) for p in CheckpointManager(out / "checkpoints").paths()] == steps
        assert sorted(r["step"] for r in read_jsonl(out / "metrics.jsonl") if "val/recall@4px" in r) == [0, 2, 4, 5]


def test_existing_run_needs_resume(reference_run, tiny):
    with pytest.raises(ConfigError, match="--resume"):
        train(resolve(PretrainConfig, "cpu-tiny", tiny(reference_run, *VIEW)))


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_a_finished_backbone_without_checkpoints_is_not_replaced(tiny, tmp_path, capsys):
    """Issue 24: a folder holding only a finished backbone.pth was replaced (the check looked only for
    checkpoints/). Now it is refused with one line, and --overwrite is the way to replace it."""
    (tmp_path / "backbone.pth").write_bytes(b"finished weights")
    (tmp_path / "report.md").write_text("old report\n")
    args = ["pretrain", "--config", "cpu-tiny", *tiny(tmp_path, "mode=view", "train.steps=1", "train.eval_every=0")]
    assert main(args) == 1
    assert "--overwrite" in _one_error_line(capsys)
    assert (tmp_path / "backbone.pth").read_bytes() == b"finished weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backbone.pth", "report.md"]
    assert main([*args, "--overwrite"]) == 0
    assert (tmp_path / "done").is_file() and load_checkpoint(tmp_path / "backbone.pth")["step"] == 1


def test_resume_without_a_readable_checkpoint_is_an_error_and_changes_nothing(reference_run, tiny, tmp_path, capsys):
    """Issue 24: --resume with no readable checkpoint restarted at step 0 and replaced backbone.pth and
    metrics.jsonl."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    for p in (run / "checkpoints").iterdir():
        p.write_bytes(b"truncated")
    before = {p: p.read_bytes() for p in (run / "backbone.pth", run / "metrics.jsonl", run / "done")}
    with pytest.warns(UserWarning, match="truncated"):
        assert main(["pretrain", "--config", "cpu-tiny", "--resume", *tiny(run, *VIEW)]) == 1
    assert "no readable checkpoint" in _one_error_line(capsys)
    assert all(p.read_bytes() == b for p, b in before.items())
    assert main(["pretrain", "--config", "cpu-tiny", "--resume", *tiny(tmp_path / "new", *VIEW)]) == 1
    assert "no readable checkpoint" in _one_error_line(capsys)


def test_a_run_that_dies_in_a_reused_folder_does_not_look_finished(reference_run, prepared_dir, tiny, tmp_path, capsys):
    """Issue 24: kill -9 of a run in a folder holding an older backbone.pth left the old weights and
    report beside the new config, and eval-matching used them. Now a fresh start (--overwrite) removes
    the earlier run's outputs and the done marker first; a dead run leaves no end product."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    real, calls = Pri3D.forward, {"n": 0}

    def dies(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the run stops mid-way, as under kill -9: no cleanup of its own
        return real(self, batch)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(Pri3D, "forward", dies)
        with pytest.raises(KeyboardInterrupt):
            train(resolve(PretrainConfig, "cpu-tiny", tiny(run, *VIEW)), overwrite=True)
    names = sorted(p.name for p in run.iterdir())
    assert "done" not in names and "backbone.pth" not in names and "report.md" not in names, names
    # what an earlier version left: an old backbone.pth beside a newer run's config and log
    (run / "backbone.pth").write_bytes((reference_run / "backbone.pth").read_bytes())
    capsys.readouterr()
    assert main(["eval-matching", "--checkpoint", str(run / "backbone.pth"), "--data", str(prepared_dir)]) == 1
    assert "has not finished" in _one_error_line(capsys)
    assert main(["pretrain", "--config", "cpu-tiny", *tiny(run, *VIEW)]) == 1  # and it is not overwritten
    assert "--overwrite" in _one_error_line(capsys)


def test_resume_with_other_data_and_output_into_a_prepared_folder_are_refused(
    reference_run, prepared_dir, tiny, tmp_path, capsys
):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    other = tmp_path / "other"
    shutil.copytree(prepared_dir, other)
    args = ["pretrain", "--config", "cpu-tiny", "--resume", *tiny(run, *VIEW), f"data.path={other}"]
    assert main(args) == 1
    assert f"trained on {prepared_dir}" in _one_error_line(capsys)
    assert (run / "done").is_file()  # refused before anything changed
    assert main(["pretrain", "--config", "cpu-tiny", *tiny(other, *VIEW)]) == 1
    assert "not a run's outputs" in _one_error_line(capsys)


def test_a_named_split_that_is_not_there_is_an_error_not_all_pairs(reference_run, prepared_dir, tiny, tmp_path, capsys):
    """Issue 24: `eval-matching --split nosuch` and `pretrain data.train_split=nope` used every pair."""
    bb = str(reference_run / "backbone.pth")
    capsys.readouterr()
    assert main(["eval-matching", "--checkpoint", bb, "--data", str(prepared_dir), "--split", "nosuch"]) == 1
    assert "split 'nosuch' not found" in _one_error_line(capsys)
    assert main(["pretrain", "--config", "cpu-tiny", *tiny(tmp_path / "r", *VIEW), "data.train_split=nope"]) == 1
    assert "split 'nope' not found" in _one_error_line(capsys)
    args = ["eval-matching", "--checkpoint", bb, "--data", str(prepared_dir), "--split", "all", "--points", "16"]
    assert main(args) == 0
    assert "all " in capsys.readouterr().out


def test_bad_settings_found_in_setup_are_one_line_and_keep_their_class(tiny, tmp_path, capsys):
    """Issue 23: a batch that does not split into micro-batches raised a plain ValueError (a traceback), and
    an init that cannot be loaded was re-wrapped as ConfigError (its class hidden)."""
    capsys.readouterr()
    args = [
        "pretrain",
        "--config",
        "cpu-tiny",
        *tiny(tmp_path / "a", *VIEW),
        "train.batch_size=6",
        "train.accumulate=4",
    ]
    assert main(args) == 1
    assert "train.batch_size 6 does not split" in _one_error_line(capsys)
    missing = tmp_path / "nosuch.pth"
    with pytest.raises(InitError, match="weights file not found"):
        train(resolve(PretrainConfig, "cpu-tiny", tiny(tmp_path / "b", *VIEW, f"model.init={missing}")))
    assert main(["pretrain", "--config", "cpu-tiny", *tiny(tmp_path / "c", *VIEW), f"model.init={missing}"]) == 1
    assert _one_error_line(capsys) == f"pri3d pretrain: error: {missing}: weights file not found"


def test_schedules_are_pure_functions_of_the_step():
    paper = resolve(PretrainConfig, "paper").optim
    assert lr_at(0, 60000, paper) == pytest.approx(0.1)
    assert lr_at(999, 60000, paper) == pytest.approx(0.1)
    assert lr_at(1000, 60000, paper) == pytest.approx(0.099)
    assert lr_at(59999, 60000, paper) == pytest.approx(0.1 * 0.99**59)
    official = resolve(PretrainConfig, "official")
    assert (
        official.optim.schedule == "poly"
        and official.model.depth_head
        and not resolve(PretrainConfig, "paper").model.depth_head
    )
    assert lr_at(30000, 60000, official.optim) == pytest.approx(0.1 * 0.5**0.9)
    assert lr_at(60000, 60000, official.optim) == 0.0


def test_real_rgbd_preset_loads_as_a_config_file_with_its_chosen_settings():
    cfg = resolve(PretrainConfig, str(Path(__file__).parents[2] / "configs" / "7scenes-cpu.yaml"))
    assert cfg.mode == "view" and cfg.model.arch == "resnet18" and cfg.model.init == "scratch"
    assert cfg.data.resolution == [96, 128] and cfg.data.crop_scale == [0.35, 1.0] and not cfg.data.flip
    assert (cfg.train.steps, cfg.train.batch_size, cfg.train.max_minutes) == (400, 4, 60.0)
    assert cfg.data.path == ""  # the data is always given on the command line (--data)


def test_all_modes_train_through_the_cli_and_eval_matching_reports(prepared_dir, tiny, tmp_path, capsys):
    for mode in ("view", "geo", "view+geo", "trivial"):
        out = tmp_path / mode.replace("+", "_")
        extra = ["train.accumulate=2"] if mode == "view" else []  # gradient accumulation: 2 micro-batches of 1
        rc = main(
            [
                "pretrain",
                "--config",
                "cpu-tiny",
                *tiny(out, f"mode={mode}", "train.steps=1", "train.eval_every=1", *extra),
            ]
        )
        assert rc == 0 and (out / "backbone.pth").exists() and (out / "config.yaml").exists()
        recs = read_jsonl(out / "metrics.jsonl")
        assert any("val/recall@4px" in r for r in recs) and any("loss" in r for r in recs)
        # the network at initialisation is evaluated first (step 0), then after the step
        assert sorted(r["step"] for r in recs if "val/recall@4px" in r) == [0, 1]
    capsys.readouterr()
    assert (
        main(
            [
                "eval-matching",
                "--checkpoint",
                str(tmp_path / "view" / "backbone.pth"),
                "--data",
                str(prepared_dir),
                "--points",
                "64",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    for r in (1, 2, 4, 8):
        assert f"recall@{r}px" in text


def test_ddp_two_cpu_processes(tiny, tmp_path):
    args = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "pri3d.cli",
        "pretrain",
        "--config",
        "cpu-tiny",
        *tiny(tmp_path, "mode=view", "train.steps=2", "train.batch_size=4", "train.eval_every=0"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(args, capture_output=True, text=True, env=env)  # no deadline: a loaded machine is slow
    assert r.returncode == 0, r.stderr[-3000:]
    ck = load_checkpoint(tmp_path / "checkpoints" / "ckpt_00000002.pt")
    assert ck["step"] == 2
    assert r.stdout.count("pretrain: done") == 1  # only rank 0 reports


def test_learning_curves_and_one_command_comparison_with_an_untrained_network(prepared_dir, tiny, tmp_path, capsys):
    from pri3d.pretrain.matching_eval import evaluate_matching

    out = tmp_path / "run"
    assert (
        main(
            [
                "pretrain",
                "--config",
                "cpu-tiny",
                *tiny(out, "mode=view", "train.steps=4", "train.eval_every=2", "train.eval_pairs=4"),
            ]
        )
        == 0
    )
    recs = read_jsonl(out / "metrics.jsonl")
    for split in ("val", "train"):  # held-out pairs and a fixed sample of training pairs, same steps
        assert sorted(r["step"] for r in recs if f"{split}/recall@4px" in r) == [0, 2, 4]
        assert all(r[f"{split}/pairs"] == 4 for r in recs if f"{split}/recall@4px" in r)
    assert (out / "curves.png").stat().st_size > 2000
    report = (out / "report.md").read_text()
    assert "![learning curves](curves.png)" in report and "| 4 |" in report
    # backbone.pth records its training resolution: eval-matching defaults to it, not to 240x320
    res = evaluate_matching(out / "backbone.pth", prepared_dir, points=64)
    assert res["resolution"] == [32, 48]
    # zero steps export the network at initialisation: --baseline scratch (same seed) is the same network
    init = tmp_path / "init"
    assert main(["pretrain", "--config", "cpu-tiny", *tiny(init, "mode=view", "train.steps=0")]) == 0
    same = evaluate_matching(init / "backbone.pth", prepared_dir, points=64, baseline="scratch")
    assert same["baseline"]["points"] == same["points"] > 0
    flat = [v for k, v in same["delta"].items() if not k.startswith("by_")]
    flat += [v for name in ("by_rotation", "by_overlap") for b in same["delta"][name].values() for v in b.values()]
    assert all(v in (0.0, None) for v in flat), same["delta"]  # None: a bin without pairs
    trained = evaluate_matching(out / "backbone.pth", prepared_dir, points=64, baseline="scratch")
    assert trained["delta"]["recall@4px"] == pytest.approx(trained["recall@4px"] - same["recall@4px"])
    assert trained["baseline"]["recall@4px"] == same["recall@4px"]
    capsys.readouterr()
    assert (
        main(
            [
                "eval-matching",
                "--checkpoint",
                str(out / "backbone.pth"),
                "--data",
                str(prepared_dir),
                "--points",
                "64",
                "--baseline",
                "scratch",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "32x48" in text and "difference" in text
    want = f"{trained['recall@4px']:.4f} vs {same['recall@4px']:.4f} untrained ({trained['delta']['recall@4px']:+.4f})"
    assert want in text
