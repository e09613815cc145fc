"""Feature-matching recall: a label-free check that the 2D features learned the 3D priors.

For held-out pairs (no augmentation), sample valid pixels of view A that have a true correspondence
in view B (reprojection with a depth test, on the feature grid). For each, take the nearest
neighbour (cosine similarity of L2-normalised backbone features) among **all** pixels of B's
feature map, and count it correct when it lands within ``r`` pixels (feature resolution) of the true
correspondence. ``recall@r`` is the fraction of correct points over all pairs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from pri3d.engine.seed import derive_seed

__all__ = ["RADII", "matching_recall", "format_recall", "evaluate_checkpoint"]

RADII = (1.0, 2.0, 4.0, 8.0)


@torch.no_grad()
def matching_recall(
    backbone: nn.Module,
    dataset,
    *,
    max_pairs: int | None = None,
    radii=RADII,
    device="cpu",
    batch_size: int = 4,
    seed: int = 0,
    progress: bool = False,
    channels_last: bool = False,
    autocast_dtype=None,
) -> dict:
    """Recall of nearest-neighbour feature matches.

    Args:
        backbone: ``(N, 3, H, W) -> (N, C, H/2, W/2)`` network (evaluated in eval mode, restored).
        dataset: a :class:`~pri3d.pretrain.data.PairDataset` built with ``view=True, augment=False``;
            its ``num_matches`` is the number of sampled points per pair.
        max_pairs: evaluate the first ``max_pairs`` pairs (all when None).
        radii: pixel radii at feature resolution.

    Returns:
        ``{"recall@1px": ..., ..., "pairs": n_pairs_with_points, "points": n_points,
        "median_px": median error}``.
    """
    from pri3d.pretrain.data import collate_pairs

    n = len(dataset) if max_pairs is None else min(len(dataset), int(max_pairs))
    was_training = backbone.training
    backbone.eval()
    dists = []
    pairs_used = 0
    try:
        it = range(0, n, batch_size)
        for start in tqdm(it, desc="matching", disable=not progress, leave=False):
            idx = list(range(start, min(n, start + batch_size)))
            batch = collate_pairs([dataset[(i, derive_seed(seed, 3, i))] for i in idx])
            images = batch["images"].to(device)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(
                device_type=torch.device(device).type,
                dtype=autocast_dtype or torch.bfloat16,
                enabled=autocast_dtype is not None,
            ):
                feats = backbone(images)
            feats = F.normalize(feats.float(), dim=1)
            B = len(idx)
            _, C, h, w = feats.shape
            m = batch["view"].to(device)
            for b in range(B):
                rows = m[m[:, 0] == b]
                if len(rows) == 0:
                    continue
                pairs_used += 1
                fa = feats[b].reshape(C, h * w)[:, rows[:, 1]].t()  # (P, C)
                fb = feats[B + b].reshape(C, h * w)  # (C, hw)
                pred = (fa @ fb).argmax(dim=1)
                du = (pred % w) - (rows[:, 2] % w)
                dv = torch.div(pred, w, rounding_mode="floor") - torch.div(rows[:, 2], w, rounding_mode="floor")
                dists.append(torch.sqrt(du.float() ** 2 + dv.float() ** 2).cpu())
    finally:
        backbone.train(was_training)
    d = torch.cat(dists) if dists else torch.zeros(0)
    out = {f"recall@{r:g}px": (float((d <= r).float().mean()) if len(d) else float("nan")) for r in radii}
    out.update(pairs=pairs_used, points=int(len(d)), median_px=float(d.median()) if len(d) else float("nan"))
    return out


def format_recall(res: dict) -> str:
    keys = [k for k in res if k.startswith("recall@")]
    return "  ".join(f"{k} {res[k]:.3f}" for k in keys) + f"  ({res['points']} points, {res['pairs']} pairs)"


def _load_model(checkpoint: str, arch: str | None, feature_dim: int | None, seed: int):
    """``(ResNetUNet, training resolution or None, description)`` from a checkpoint or a baseline name
    (:func:`pri3d.models.load.load_unet`, shared with ``pri3d probe``)."""
    from pri3d.models.load import load_unet

    return load_unet(checkpoint, arch, feature_dim, seed, what="eval-matching")


def evaluate_checkpoint(
    checkpoint,
    data,
    *,
    pairs_csv=None,
    split: str = "val",
    max_pairs=None,
    points: int = 1024,
    resolution=None,
    arch=None,
    feature_dim=None,
    depth_threshold: float = 0.05,
    device: str = "auto",
    seed: int = 0,
    progress: bool = False,
    baseline: str | None = None,
) -> dict:
    """Recall@{1,2,4,8}px of a checkpoint on pairs of a prepared directory (see :func:`matching_recall`).

    The resolution defaults to the one the checkpoint was trained at (recorded in pre-training
    checkpoints and ``backbone.pth``), else 240x320. ``baseline="scratch"`` (or ``"imagenet"``) also
    evaluates an untrained network of the same arch and feature width, seeded by ``seed``, at the same
    resolution on the same pairs and points; the result then has ``baseline`` (its recalls) and
    ``delta`` (checkpoint minus baseline)."""
    from pri3d.engine.distributed import init_distributed
    from pri3d.errors import ConfigError, DataError
    from pri3d.pairs.store import PreparedData, read_pairs_csv
    from pri3d.pretrain.data import PairDataset, fixed_sample, split_pairs

    if points < 1 or (max_pairs is not None and max_pairs < 1):
        raise ConfigError(f"--points and --max-pairs must be >= 1, got {points} and {max_pairs}")
    if resolution and (len(resolution) != 2 or any(int(v) <= 0 or int(v) % 4 for v in resolution)):
        raise ConfigError(f"--resolution {resolution}: height and width must be positive multiples of 4")
    device = init_distributed(device).device  # auto / cpu / cuda / cuda:N, and CUDA must be there
    model, ckpt_res, desc = _load_model(str(checkpoint), arch, feature_dim, seed)
    res = tuple(resolution) if resolution else (ckpt_res or (240, 320))
    if any(int(v) <= 0 or int(v) % 4 for v in res):
        raise DataError(f"resolution {res}: both sides must be positive multiples of 4")
    prepared = PreparedData(data)
    if pairs_csv:
        pairs = read_pairs_csv(pairs_csv)
        source = f"{len(pairs)} pairs from {pairs_csv}"
    elif split == "all":  # asked for by name: every mined pair, training pairs included
        pairs = prepared.pairs
        source = f"all {len(pairs)} pairs (--split all)"
    else:  # a split that is not found is an error, never every pair (training pairs would be scored)
        _, pairs, _ = split_pairs(prepared, "all", split, optional=())
        source = f"{len(pairs)} held-out pairs (split {split!r})"
    if not pairs:
        raise DataError(f"{data}: no pairs to evaluate")
    if max_pairs is not None and max_pairs < len(pairs):  # a fixed random sample, not the first (sorted) pairs
        pairs = fixed_sample(pairs, int(max_pairs), seed)
        source += f", a fixed sample of {len(pairs)}"
    ds = PairDataset(
        prepared, pairs, resolution=res, view=True, num_matches=points, depth_threshold=depth_threshold, augment=False
    )

    def run(net):
        net.to(device)
        return matching_recall(net, ds, device=device, seed=seed, progress=progress)

    out = run(model)
    out.update(checkpoint=desc, data=str(data), pairs_source=source, resolution=list(res))
    if baseline:
        if baseline not in ("scratch", "imagenet"):
            raise DataError(f"baseline must be 'scratch' or 'imagenet', got {baseline!r}")
        base, _, base_desc = _load_model(baseline, model.arch, model.feature_dim, seed)
        b = run(base)
        b["checkpoint"] = base_desc
        out["baseline"] = b
        out["delta"] = {k: out[k] - b[k] for k in out if k.startswith("recall@") or k == "median_px"}
    return out
