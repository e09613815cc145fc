import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from dsfixtures import (
    one_thread,  # noqa: F401  (pytest fixture)
    write_nyu_mat,
    write_nyu_png,
    write_scannet_like,
)

from pri3d.cli import main
from pri3d.config import resolve
from pri3d.data.synth import generate
from pri3d.downstream import run_finetune
from pri3d.downstream.config import FinetuneConfig
from pri3d.downstream.evaluate import evaluate_finetuned
from pri3d.engine.checkpoint import load_checkpoint
from pri3d.engine.logging import read_jsonl
from pri3d.errors import ConfigError
from pri3d.models.resnet_unet import ResNetUNet


def _cfg(preset, root, out, *over, **data):
    values = {f"data.{k}": v for k, v in {"path": str(root), **data}.items()}
    return resolve(FinetuneConfig, preset, [f"out={out}", *over], values=values)


SMOKE = [
    ("tiny-semseg", "scannet", []),
    ("tiny-semseg", "scannet", ["model.head=deeplabv3"]),
    ("tiny-semseg", "nyu", ["data.label_set=nyu40"]),
    ("tiny-semseg", "nyu", ["data.label_set=nyu13"]),
    ("tiny-detect", "scannet", []),
    ("tiny-detect", "scannet-combined", ["data.instance_format=combined"]),
    ("tiny-detect", "nyu-mat", ["data.instance_set=nyu9"]),
]


@pytest.mark.parametrize("preset,data,over", SMOKE, ids=[f"{p}-{d}-{'-'.join(o)}" for p, d, o in SMOKE])
def test_smoke_two_iterations(tmp_path, preset, data, over):
    torch.manual_seed(0)
    if data == "nyu":
        root = write_nyu_png(tmp_path / "d", n_train=3, n_test=2)
    elif data == "nyu-mat":
        root = write_nyu_mat(tmp_path / "d")
    else:
        root = write_scannet_like(tmp_path / "d", frames=2, combined=data.endswith("combined"))
    res = run_finetune(_cfg(preset, root, tmp_path / "out", *over), progress=False)
    assert res["iterations"] == 2
    assert res["final"]["step"] == 2 and res["best"]["step"] == 2
    assert "final" in res["final"]["label"] and "best-on-val" in res["best"]["label"]
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk["final"]["value"] == res["final"]["value"]
    logs = read_jsonl(tmp_path / "out" / "metrics.jsonl")
    assert [r["step"] for r in logs if "loss" in r] == [1, 2]
    assert all(r["loss"] is not None and r["loss"] > 0 for r in logs if "loss" in r)
    ck = load_checkpoint(tmp_path / "out" / "checkpoints" / "ckpt_00000002.pt")
    assert ck["format"] == "pri3d-finetune" and ck["step"] == 2 and "backbone" in ck
    assert (tmp_path / "out" / "config.yaml").is_file() and (tmp_path / "out" / "best.pt").is_file()


def test_synthetic_generator_smoke(tmp_path):
    root = tmp_path / "synth"
    generate(root, scenes=2, frames_per_scene=2, seed=0, resolution=(48, 64), workers=1, progress=False)
    for task in ("semseg", "detect"):
        res = run_finetune(_cfg(f"tiny-{task}", root, tmp_path / task, "data.min_mask_area=10"), progress=False)
        assert res["iterations"] == 2 and res["data"]["train_images"] > 0


def test_torchrun_two_ranks_fine_tune_both_tasks(tmp_path):
    """DDP on CPU (gloo): both ranks run the refactored loop (sharded data and evaluation, the
    cross-rank finite check, the DDP wrapper built after resume) to the end; rank 0 writes the results."""
    root = tmp_path / "synth"
    generate(root, scenes=3, frames_per_scene=4, seed=0, resolution=(48, 64), workers=1, progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for task in ("semseg", "detect"):
        out = tmp_path / f"ddp-{task}"
        args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
        args += ["-m", "pri3d.cli", "finetune", task, "--config", f"tiny-{task}", "--data", str(root)]
        args += ["--out", str(out), "--no-progress", "data.min_mask_area=10", "train.batch_size=2"]
        r = subprocess.run(args, capture_output=True, text=True, env=env)  # no deadline: a loaded machine is slow
        assert r.returncode == 0, r.stderr[-3000:]
        res = json.loads((out / "results.json").read_text())
        assert res["iterations"] == 2 and res["final"]["step"] == 2


def test_semseg_resume_is_exact(tmp_path):
    root = write_scannet_like(tmp_path / "d", frames=2)
    over = ["train.steps=4", "train.ckpt_every=2", "train.keep_checkpoints=3", "data.hflip=true"]
    run_finetune(_cfg("tiny-semseg", root, tmp_path / "a", *over), progress=False)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    (tmp_path / "b" / "checkpoints" / "ckpt_00000004.pt").unlink()
    (tmp_path / "b" / "results.json").unlink()
    with pytest.raises(ConfigError, match="--resume"):
        run_finetune(_cfg("tiny-semseg", root, tmp_path / "b", *over), progress=False)
    res = run_finetune(_cfg("tiny-semseg", root, tmp_path / "b", *over), resume=True, progress=False)
    assert res["iterations"] == 4
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "ckpt_00000004.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "ckpt_00000004.pt")["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    steps = [r["step"] for r in read_jsonl(tmp_path / "b" / "metrics.jsonl") if "loss" in r]
    assert steps == [1, 2, 3, 4]


def test_a_finished_finetune_folder_is_not_replaced_and_resume_needs_a_checkpoint(tmp_path, capsys):
    """Issue 24: `finetune semseg --out D` replaced a D holding best.pt and results.json (the check
    looked only for checkpoints/); --resume without a checkpoint started from scratch."""
    root = write_scannet_like(tmp_path / "d", frames=2)
    out = tmp_path / "ft"
    out.mkdir()
    (out / "best.pt").write_bytes(b"best weights")
    (out / "results.json").write_text("{}\n")
    args = ["finetune", "semseg", "--config", "tiny-semseg", "--data", str(root), "--out", str(out), "--no-progress"]
    assert main([*args, "train.steps=1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0], err
    assert (out / "best.pt").read_bytes() == b"best weights" and (out / "results.json").read_text() == "{}\n"
    assert main([*args, "--resume", "train.steps=1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no readable checkpoint" in err[0], err
    assert (out / "best.pt").read_bytes() == b"best weights"
    assert main([*args, "--overwrite", "train.steps=1"]) == 0
    assert (out / "done").is_file() and json.loads((out / "results.json").read_text())["iterations"] == 1


def test_unfinished_run_folder_is_not_evaluated_and_other_checkpoints_do_not_resume(tmp_path):
    from pri3d.engine.run_dir import mark_done
    from pri3d.errors import CheckpointError

    root = write_scannet_like(tmp_path / "d", frames=2)
    run_finetune(_cfg("tiny-semseg", root, tmp_path / "a", "train.steps=2"), progress=False)
    (tmp_path / "a" / "done").unlink()  # as a run that died after writing best.pt
    with pytest.raises(CheckpointError, match="has not finished"):
        evaluate_finetuned(tmp_path / "a", progress=False)
    assert evaluate_finetuned(tmp_path / "a" / "checkpoints" / "ckpt_00000002.pt", progress=False)["step"] == 2
    mark_done(tmp_path / "a")
    assert evaluate_finetuned(tmp_path / "a", progress=False)["step"] == 2
    ck = tmp_path / "a" / "checkpoints" / "ckpt_00000002.pt"
    torch.save({**load_checkpoint(ck), "format": "pri3d-pretrain"}, ck)  # a pre-training run's folder
    with pytest.raises(CheckpointError, match="cannot resume"):
        run_finetune(_cfg("tiny-semseg", root, tmp_path / "a", "train.steps=4"), resume=True, progress=False)


def test_earlier_semseg_layout_evaluates_but_does_not_resume(tmp_path):
    """Fine-tuned checkpoints of the earlier layout (classifier stacked on decoder.conv0) still evaluate
    (the two 1x1 convs are folded into one), and refuse to resume with a clear message."""
    root = write_scannet_like(tmp_path / "d", frames=2)
    run_finetune(_cfg("tiny-semseg", root, tmp_path / "a", "train.steps=2"), progress=False)
    path = tmp_path / "a" / "checkpoints" / "ckpt_00000002.pt"
    state = load_checkpoint(path)
    new = evaluate_finetuned(path, progress=False)["scores"]["confusion"]
    k = state["model"]["backbone.decoder.conv0.weight"].shape[0]
    hidden = state["model"]["backbone.decoder.conv0.weight"].shape[1]
    legacy = dict(state["model"])  # earlier layout: conv0 = identity projection, classifier = the old conv0
    legacy["classifier.weight"], legacy["classifier.bias"] = (
        legacy.pop("backbone.decoder.conv0.weight"),
        legacy.pop("backbone.decoder.conv0.bias"),
    )
    legacy["backbone.decoder.conv0.weight"] = torch.eye(hidden)[:, :, None, None]
    legacy["backbone.decoder.conv0.bias"] = torch.zeros(hidden)
    assert legacy["classifier.weight"].shape[0] == k
    torch.save({**state, "model": legacy}, path)
    assert evaluate_finetuned(path, progress=False)["scores"]["confusion"] == new
    with pytest.raises(ConfigError, match="earlier semantic-segmentation UNet layout"):
        run_finetune(_cfg("tiny-semseg", root, tmp_path / "a", "train.steps=4"), resume=True, progress=False)


def test_fraction_changes_the_training_set(tmp_path):
    root = write_scannet_like(tmp_path / "d", scenes=tuple(f"scene{i:04d}_00" for i in range(6)), frames=2)
    res = run_finetune(_cfg("tiny-semseg", root, tmp_path / "o", "data.fraction=0.4", "train.steps=1"), progress=False)
    assert res["data"]["train_images"] == 4  # ceil(0.4 * 5 scenes) = 2 scenes x 2 frames
    assert res["data"]["val_images"] == 2


def test_cli_finetune_evaluate_and_reuse(tmp_path, capsys):
    root = write_scannet_like(tmp_path / "d", frames=2)
    out = tmp_path / "run"
    rc = main(
        [
            "finetune",
            "semseg",
            "--config",
            "tiny-semseg",
            "--data",
            str(root),
            "--out",
            str(out),
            "--fraction",
            "0.5",
            "--fraction-by",
            "image",
            "--seed",
            "3",
            "--no-progress",
            "train.steps=1",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "mIoU" in text and "best-on-val" in text
    rc = main(["evaluate", "--checkpoint", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "pri3d evaluate: semseg on val (2 images" in text
    ev = json.loads((out / "eval-val.json").read_text())
    res = json.loads((out / "results.json").read_text())
    assert ev["scores"]["miou"] == pytest.approx(res["best"]["value"])  # same weights, same data
    # a fine-tuned checkpoint's backbone initialises another run (encoder + decoder)
    rc = main(
        [
            "finetune",
            "semseg",
            "--config",
            "tiny-semseg",
            "--data",
            str(root),
            "--out",
            str(tmp_path / "r2"),
            "--init",
            str(out / "best.pt"),
            "--no-progress",
            "train.steps=1",
        ]
    )
    assert rc == 0 and "encoder+decoder" in capsys.readouterr().out
    res2 = evaluate_finetuned(tmp_path / "r2" / "best.pt", split="train", progress=False)
    assert res2["images"] == 4


def test_cli_bad_inputs(tmp_path, capsys):
    root = write_scannet_like(tmp_path / "d", frames=1)
    rc = main(["finetune", "semseg", "--config", "tiny-semseg", "--data", str(root), "--fraction", "1.5"])
    assert rc == 1 and "fraction must be in (0, 1]" in capsys.readouterr().err
    r34 = ResNetUNet("resnet34", 16)
    torch.save({"format": "pri3d-pretrain", "backbone": r34.state_dict(), "arch": "resnet34"}, tmp_path / "r34.pt")
    rc = main(
        [
            "finetune",
            "semseg",
            "--config",
            "tiny-semseg",
            "--data",
            str(root),
            "--out",
            str(tmp_path / "o"),
            "--init",
            str(tmp_path / "r34.pt"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "does not match the model (different backbone?)" in err and "layer" in err
    rc = main(["finetune", "detect", "--config", "tiny-semseg", "--data", str(root)])
    assert rc == 1 and "semseg preset" in capsys.readouterr().err
    # issue 23: an unknown arch was a plain ValueError from the model builder (a traceback)
    rc = main(["finetune", "semseg", "--config", "tiny-semseg", "--data", str(root), "model.arch=resnet7"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err == [
        "pri3d finetune: error: model.arch must be one of resnet18, resnet34, resnet50, resnet101, got 'resnet7'"
    ]
    rc = main(["evaluate", "--checkpoint", str(tmp_path / "r34.pt")])
    assert rc == 1 and "not a fine-tuned checkpoint" in capsys.readouterr().err


def test_a_non_finite_loss_names_the_step_as_pretraining_does(tmp_path, monkeypatch):
    """Issue 23 (d): fine-tuning's TrainingError named the 0-based step (pre-training says step + 1, the
    step the log and the checkpoints count)."""
    from pri3d.downstream.semseg import SemSegTask
    from pri3d.engine.checkpoint import CheckpointManager
    from pri3d.errors import TrainingError

    real, calls = SemSegTask.loss, {"n": 0}

    def poisoned(self, model, batch, device):
        calls["n"] += 1
        losses = real(self, model, batch, device)
        return {k: v * float("nan") for k, v in losses.items()} if calls["n"] == 3 else losses

    monkeypatch.setattr(SemSegTask, "loss", poisoned)
    root = write_scannet_like(tmp_path / "d", frames=2)
    out = tmp_path / "a"
    with pytest.raises(TrainingError, match=r"non-finite loss at step 3 \(.*last checkpoint: ckpt_00000002\.pt"):
        run_finetune(_cfg("tiny-semseg", root, out, "train.steps=4", "train.ckpt_every=2"), progress=False)
    assert [p.name for p in CheckpointManager(out / "checkpoints").paths()] == ["ckpt_00000002.pt"]


def test_fine_tuning_destroys_the_process_group_at_the_end(tmp_path):
    """Issue 23 (a): fine-tuning never called the distributed cleanup (pre-training did), so under torchrun
    the process group outlived the run. Here a one-rank gloo group stands in for torchrun's."""
    import torch.distributed as dist

    root = write_scannet_like(tmp_path / "d", frames=2)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        run_finetune(_cfg("tiny-semseg", root, tmp_path / "a", "train.steps=1"), progress=False)
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_resume_notes_only_the_config_changes_that_matter(tmp_path):
    """Issue 23 (c): fine-tuning had no keys that may change on resume, so a resume with another log or
    checkpoint interval was reported as a changed config; pre-training ignores those. A change that does
    alter the computation is still named, with the same warning as pre-training's."""
    root = write_scannet_like(tmp_path / "d", frames=2)
    out = tmp_path / "a"
    over = ["train.steps=4", "train.ckpt_every=2"]
    run_finetune(_cfg("tiny-semseg", root, out, *over), progress=False)
    free = ["train.log_every=2", "train.keep_checkpoints=4", "data.scan_workers=2", "train.eval_every_epochs=3"]
    lines = []
    run_finetune(_cfg("tiny-semseg", root, out, *over, *free), resume=True, progress=False, log=lines.append)
    resumed = [line for line in lines if "resumed from" in line]
    assert len(resumed) == 1 and not any("config" in line for line in lines), lines
    lines.clear()
    run_finetune(_cfg("tiny-semseg", root, out, *over, "optim.lr=0.5"), resume=True, progress=False, log=lines.append)
    warned = [line for line in lines if "warning" in line]
    assert len(warned) == 1 and "optim.lr" in warned[0] and "train.log_every" not in warned[0], lines


def test_evaluations_every_n_epochs_and_checkpoints_at_each_and_at_the_end(tmp_path):
    """``train.eval_every_epochs`` (``train.eval_every`` before issue 23) evaluates every N epochs and at the
    end; ``train.ckpt_every: 0`` checkpoints at every evaluation and at the end only, as in pre-training."""
    root = write_scannet_like(tmp_path / "d", frames=2)
    over = ["train.steps=0", "train.epochs=3", "train.eval_every_epochs=2", "train.keep_checkpoints=9"]
    res = run_finetune(_cfg("tiny-semseg", root, tmp_path / "a", *over, "train.ckpt_every=0"), progress=False)
    ipe = res["total_iterations"] // 3
    assert ipe >= 1 and [h["step"] for h in res["history"]] == [2 * ipe, 3 * ipe]
    assert [p.name for p in sorted((tmp_path / "a" / "checkpoints").iterdir())] == [
        f"ckpt_{s:08d}.pt" for s in (2 * ipe, 3 * ipe)
    ]
    res = run_finetune(_cfg("tiny-semseg", root, tmp_path / "b", *over, "train.ckpt_every=1"), progress=False)
    assert len(list((tmp_path / "b" / "checkpoints").iterdir())) == 3 * ipe  # every step


def test_a_run_saved_before_the_rename_resumes(tmp_path, capsys):
    """A run folder written before ``train.eval_every`` became ``train.eval_every_epochs`` (its config.yaml and
    its checkpoint say ``eval_every``) resumes from that config.yaml: the old key loads with one warning, as
    the same count of epochs, and the resume notes no changed setting."""
    import yaml

    from pri3d.engine.io import atomic_save

    root = write_scannet_like(tmp_path / "d", frames=2)
    out = tmp_path / "a"
    over = ["train.steps=4", "train.ckpt_every=2", "train.eval_every_epochs=0"]
    run_finetune(_cfg("tiny-semseg", root, out, *over), progress=False)
    for name in ("done", "results.json", "best.pt", "checkpoints/ckpt_00000004.pt"):  # killed after step 2
        (out / name).unlink()

    def old_names(config: dict) -> dict:
        config["train"]["eval_every"] = config["train"].pop("eval_every_epochs")
        return config

    (out / "config.yaml").write_text(yaml.safe_dump(old_names(yaml.safe_load((out / "config.yaml").read_text()))))
    ckpt = out / "checkpoints" / "ckpt_00000002.pt"
    state = load_checkpoint(ckpt)
    atomic_save(state | {"config": old_names(state["config"])}, ckpt)
    args = ["finetune", "semseg", "--config", str(out / "config.yaml"), "--data", str(root), "--out", str(out)]
    with pytest.warns(FutureWarning, match="train.eval_every is deprecated; use train.eval_every_epochs"):
        assert main([*args, "--resume", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "resumed from" in printed and "differs" not in printed, printed
    res = json.loads((out / "results.json").read_text())
    assert res["iterations"] == 4 and [h["step"] for h in res["history"]] == [4]  # eval_every 0: only at the end
    assert res["config"]["train"]["eval_every_epochs"] == 0 and "eval_every" not in res["config"]["train"]
