import re
from pathlib import Path

import torch

from pri3d.config import resolve
from pri3d.pairs.store import PreparedData
from pri3d.pretrain.config import PretrainConfig
from pri3d.pretrain.data import collate_pairs, split_pairs
from pri3d.pretrain.modes import MODES


def test_view_geo_returns_named_finite_losses_that_train_both_networks(prepared_dir, tiny, tmp_path):
    cfg = resolve(PretrainConfig, "cpu-tiny", tiny(tmp_path, "mode=view+geo", "model.depth_head=true"))
    p = PreparedData(prepared_dir)
    train, _, _ = split_pairs(p)
    spec = MODES["view+geo"]
    ds = spec.build_dataset(cfg, p, train, True)
    batch = spec.collate([ds[(i, i)] for i in range(2)])
    torch.manual_seed(0)
    method = spec.build_method(cfg)
    losses = method(batch)
    assert set(losses) == {"view", "geo", "depth"}
    for name, v in losses.items():
        assert v.dim() == 0 and bool(torch.isfinite(v)), name
    assert method.stats["view_pairs"] > 0 and method.stats["geo_chunks"] > 0  # neither loss was all skipped
    sum(losses.values()).backward()
    # both networks get a gradient: the 2D backbone and the 3D sparse UNet (and both projection heads)
    for net in (method.backbone.encoder.conv1, method.net3d.final, method.head2d, method.head3d):
        grads = [q.grad for q in net.parameters()]
        assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0, net


def test_view_training_never_imports_spconv(prepared_dir, tiny, tmp_path, monkeypatch):
    import pri3d.models.sparse_backend as sb
    from pri3d.pretrain.loop import train

    def refuse():
        raise AssertionError("spconv requested by view-only training")

    monkeypatch.setattr(sb, "import_spconv", refuse)
    cfg = resolve(PretrainConfig, "cpu-tiny", tiny(tmp_path, "mode=view", "train.steps=1", "train.eval_every=0"))
    assert train(cfg)["steps"] == 1
    # and nothing but sparse_backend imports spconv directly
    src = Path(sb.__file__).parents[1]
    offenders = [
        str(f.relative_to(src))
        for f in src.rglob("*.py")
        if f.name != "sparse_backend.py" and re.search(r"^\s*(import|from) spconv", f.read_text(), re.M)
    ]
    assert offenders == []


def test_collated_batch_has_both_views(prepared_dir, tiny, tmp_path):
    cfg = resolve(PretrainConfig, "cpu-tiny", tiny(tmp_path, "mode=view+geo"))
    p = PreparedData(prepared_dir)
    train, _, _ = split_pairs(p)
    ds = MODES["view+geo"].build_dataset(cfg, p, train, True)
    b = collate_pairs([ds[(0, 1)], ds[(1, 2)]])
    assert b["images"].shape == (4, 3, 32, 48) and b["depth"].shape == (4, 16, 24)
    assert set(b["vox_coords"][:, 0].tolist()) <= {0, 1, 2, 3}
    assert int(b["geo"][:, 2].max()) < len(b["vox_coords"])
