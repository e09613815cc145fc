"""The MoCo v2 baseline mode: momentum update, shuffle-BN, data, and a CLI run that resumes
exactly and fine-tunes."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from pri3d.cli import main
from pri3d.config import resolve
from pri3d.engine.checkpoint import load_checkpoint
from pri3d.engine.logging import read_jsonl
from pri3d.engine.optim import lr_at
from pri3d.errors import ConfigError
from pri3d.pairs.store import PreparedData
from pri3d.pretrain.config import PretrainConfig
from pri3d.pretrain.data import split_pairs
from pri3d.pretrain.mocov2 import FrameDataset, MoCoV2, momentum_update, random_resized_crop_box
from pri3d.pretrain.modes import MODES


def _tiny_method(*over: str) -> MoCoV2:
    torch.manual_seed(0)
    cfg = resolve(
        PretrainConfig, "cpu-tiny", ["mode=mocov2", "moco.queue_size=8", "moco.out_dim=4", "moco.mlp_dim=8", *over]
    )
    return MoCoV2(cfg)


def test_momentum_update_math():
    k = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    q = [torch.tensor([3.0, 0.0]), torch.tensor([[-1.0]])]
    momentum_update(k, q, 0.75)
    torch.testing.assert_close(k[0], torch.tensor([0.75 * 1 + 0.25 * 3, 0.75 * 2]))
    torch.testing.assert_close(k[1], torch.tensor([[0.75 * 3 - 0.25]]))
    torch.testing.assert_close(q[0], torch.tensor([3.0, 0.0]))  # queries untouched


def test_method_trains_the_encoder_only_and_updates_key_encoder_and_queue():
    m = _tiny_method("moco.momentum=0.9")
    m.train()
    assert not any(p.requires_grad for p in m.backbone.decoder.parameters())
    assert not any(p.requires_grad for p in m.key_encoder.parameters())
    x = torch.randn(4, 3, 32, 32)
    queue0 = m.queue.clone()
    losses = m({"images": x, "num_pairs": 2})
    assert set(losses) == {"moco"} and torch.isfinite(losses["moco"])
    assert m.stats["moco_keys"] == 2 and 0.0 <= m.stats["moco_acc1"] <= 1.0
    # first training forward: key encoder = query encoder; the two new keys are in the queue at rows 0, 1
    for pk, pq in zip(m._key_params(), m._query_params()):
        torch.testing.assert_close(pk, pq, rtol=0, atol=0)
    assert int(m.queue_ptr) == 2 and int(m.num_updates) == 1
    torch.testing.assert_close(m.queue[2:], queue0[2:])
    torch.testing.assert_close(m.queue[:2].norm(dim=1), torch.ones(2))
    losses["moco"].backward()
    assert all(p.grad is None for p in m.backbone.decoder.parameters())
    assert all(p.grad is None for p in m._key_params())
    assert m.backbone.encoder.conv1.weight.grad is not None and m.head.fc2.weight.grad is not None
    with torch.no_grad():  # an optimizer step on the query encoder
        for p in m._query_params():
            p.sub_(0.1 * p.grad)
    k_before = [p.clone() for p in m._key_params()]
    q_now = [p.clone() for p in m._query_params()]
    m({"images": x, "num_pairs": 2})
    for pk, kb, pq in zip(m._key_params(), k_before, q_now):
        torch.testing.assert_close(pk, 0.9 * kb + 0.1 * pq)
    assert int(m.queue_ptr) == 4
    m.eval()  # evaluation: no side effects
    state = {k: v.clone() for k, v in m.state_dict().items()}
    m({"images": x, "num_pairs": 2})
    assert all(torch.equal(state[k], v) for k, v in m.state_dict().items())


def test_shuffle_bn_keys_come_back_in_sample_order():
    m = _tiny_method("moco.bn_group_size=0")
    m.train()
    x = torch.randn(4, 3, 64, 64)
    m.shuffle_bn = True
    k_shuf, k_all = m._keys(x)
    m.shuffle_bn = False
    k_plain, _ = m._keys(x)
    torch.testing.assert_close(k_shuf, k_plain, rtol=1e-4, atol=1e-5)  # one BN group: permutation-invariant
    torch.testing.assert_close(k_all, k_shuf)
    # groups of one sample: each key is its own image's embedding, whatever the permutation
    m.bn_group_size, m.shuffle_bn = 1, True
    k_grouped, _ = m._keys(x)
    for i in range(4):
        alone = torch.nn.functional.normalize(m.key_head(m.key_encoder(x[i : i + 1])[-1].mean((2, 3))), dim=1)
        torch.testing.assert_close(k_grouped[i : i + 1], alone, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(k_grouped, k_plain, atol=1e-3)  # the grouping changed the statistics


def test_crop_box_is_inside_the_image_with_the_requested_area_and_aspect():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        top, left, h, w = random_resized_crop_box(60, 80, (0.2, 1.0), (3 / 4, 4 / 3), g, aspect=1.5)
        assert 0 <= top and top + h <= 60 and 0 <= left and left + w <= 80 and h > 0 and w > 0
        assert 0.2 * 4800 * 0.9 <= h * w <= 4800
        assert 1.5 * 0.75 * 0.9 <= w / h <= 1.5 * 4 / 3 * 1.1
    # impossible request (a strip): the fallback is a centred crop with the closest allowed aspect
    assert random_resized_crop_box(10, 100, (0.9, 1.0), (3 / 4, 4 / 3), g) == (0, 43, 10, 13)


def test_frame_dataset_deduplicates_frames_and_is_seeded(prepared_dir):
    prepared = PreparedData(prepared_dir)
    pairs, _, _ = split_pairs(prepared)
    ds = FrameDataset(prepared, pairs, resolution=(32, 48))
    assert len(ds) == len({(p.scene, f) for p in pairs for f in (p.frame_a, p.frame_b)})
    assert len(ds) < 2 * len(pairs)
    a, b, c = ds[(1, 7)], ds[(1, 7)], ds[(1, 8)]
    assert a["image_q"].shape == (3, 32, 48) and a["key"] == ds.frames[1]
    assert torch.equal(a["image_q"], b["image_q"]) and torch.equal(a["image_k"], b["image_k"])
    assert not torch.equal(a["image_q"], a["image_k"]) and not torch.equal(a["image_q"], c["image_q"])
    plain = FrameDataset(prepared, pairs, resolution=(32, 48), augment=False)[(1, 7)]
    assert torch.equal(plain["image_q"], plain["image_k"])
    batch = MODES["mocov2"].collate([a, c])
    assert batch["images"].shape == (4, 3, 32, 48) and batch["num_pairs"] == 2
    assert torch.equal(batch["images"][2], a["image_k"])  # queries first, then keys


def test_config_recipe_and_validation():
    cfg = resolve(PretrainConfig, "mocov2")
    assert cfg.mode == "mocov2" and cfg.train.batch_size == 256 and cfg.optim.lr == 0.03
    assert (cfg.moco.queue_size, cfg.moco.temperature, cfg.moco.momentum, cfg.moco.out_dim) == (65536, 0.2, 0.999, 128)
    assert cfg.optim.weight_decay == 1e-4 and cfg.optim.schedule == "cosine"
    assert lr_at(0, 100, cfg.optim) == pytest.approx(0.03)
    assert lr_at(50, 100, cfg.optim) == pytest.approx(0.015)
    assert lr_at(100, 100, cfg.optim) == pytest.approx(0.0)
    assert resolve(PretrainConfig, "cpu-small", ["mode=mocov2", "moco.queue_size=4096"]).moco.queue_size == 4096
    for bad in ("moco.temperature=0", "moco.momentum=1.0", "moco.crop_scale=[0.5,0.2]", "moco.queue_size=0"):
        with pytest.raises(ConfigError, match="moco"):
            resolve(PretrainConfig, "cpu-tiny", ["mode=mocov2", bad])
    with pytest.raises(ConfigError, match="queue_size"):
        MoCoV2(resolve(PretrainConfig, "cpu-tiny", ["mode=mocov2", "moco.queue_size=1"]))


def test_cli_run_resumes_exactly_and_fine_tunes_the_encoder(prepared_dir, tiny, tmp_path):
    from pri3d.downstream import FinetuneConfig, run_finetune

    over = ["mode=mocov2", "moco.queue_size=8", "train.steps=3", "train.eval_every=0", "data.resolution=[32,32]"]
    a = tmp_path / "a"
    assert main(["pretrain", "--config", "cpu-tiny", *tiny(a, *over)]) == 0
    bb = load_checkpoint(a / "backbone.pth")
    assert bb["format"] == "pri3d-unet" and bb["arch"] == "resnet18"
    assert all(k.startswith(("encoder.", "decoder.")) for k in bb["backbone"])
    losses = {r["step"]: r["loss/moco"] for r in read_jsonl(a / "metrics.jsonl") if "loss" in r}
    assert sorted(losses) == [1, 2, 3] and all(math.isfinite(v) for v in losses.values())
    final = load_checkpoint(a / "checkpoints" / "ckpt_00000003.pt")
    assert int(final["model"]["queue_ptr"]) == 6 and int(final["model"]["num_updates"]) == 3

    # resume from the step-2 checkpoint: the same step-3 loss and the same weights, queue and key encoder
    b = tmp_path / "b"
    (b / "checkpoints").mkdir(parents=True)
    shutil.copy(a / "metrics.jsonl", b / "metrics.jsonl")
    shutil.copy(a / "checkpoints" / "ckpt_00000002.pt", b / "checkpoints")
    assert main(["pretrain", "--config", "cpu-tiny", "--resume", *tiny(b, *over)]) == 0
    got = {r["step"]: r["loss/moco"] for r in read_jsonl(b / "metrics.jsonl") if "loss" in r}
    assert got[3] == pytest.approx(losses[3], rel=1e-6, abs=1e-6)
    resumed = load_checkpoint(b / "checkpoints" / "ckpt_00000003.pt")["model"]
    for k, v in final["model"].items():
        torch.testing.assert_close(resumed[k], v, rtol=0, atol=1e-6, msg=k)

    # the weights fine-tune with the encoder transferred
    cfg = resolve(
        FinetuneConfig,
        "tiny-semseg",
        [f"out={tmp_path / 'ft'}", f"init={a / 'backbone.pth'}", "model.transfer=encoder", "model.arch=resnet18"],
        values={"data.path": str(prepared_dir.parent / "synth")},
    )
    res = run_finetune(cfg, progress=False)
    assert res["iterations"] == 2 and "encoder (decoder random)" in res["init"]


def test_accumulation_keeps_the_momentum_per_optimizer_step():
    m = _tiny_method("moco.momentum=0.81", "train.accumulate=2", "train.batch_size=4")
    assert m.m == pytest.approx(0.9)  # two micro-batch updates with the same query encoder: 0.81 per step
