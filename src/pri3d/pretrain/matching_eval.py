"""Feature-matching recall: a label-free check that the 2D features learned the 3D priors.

For held-out pairs (no augmentation), sample valid pixels of view A that have a true correspondence
in view B (reprojection with a depth test, on the feature grid). For each, take the nearest
neighbour (cosine similarity of L2-normalised backbone features) among **all** pixels of B's
feature map, and count it correct when it lands within ``r`` pixels (feature resolution) of the true
correspondence. ``recall@r`` is the fraction of correct points over all pairs.

Pixel units: ``recall@{1,2,4,8}px`` count in **feature pixels** (the backbone's output grid, half the
input resolution), the unit of the training logs; ``recall@{2,4,8,16}px_img`` count in **input-image
pixels at the evaluated resolution** (``--resolution``), the unit of Probe3D-style tables. A feature
pixel is two input pixels, so ``recall@4px_img`` equals ``recall@2px``; the image-pixel keys are the ones
reported per bin of viewpoint change (``by_rotation``: relative camera rotation 0-15, 15-30, 30-60,
60-180 degrees) and of pair overlap (``by_overlap``: 0.3-0.4, 0.4-0.5, 0.5-0.7, 0.7-1.0, from the
prepared ``pairs.csv``), each with its number of pairs and points.

With ``pose=True`` the same features also give the relative-pose AUC of :mod:`pri3d.pretrain.pose_eval`
(``pose_auc@5/10/20``, overall and per bin). :func:`evaluate_pose_pairs` scores it on a pair list in
the ScanNet test-pair format of SuperGlue / LoFTR (:mod:`pri3d.pairs.pose_list`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from pri3d.engine.seed import derive_seed
from pri3d.geometry.camera import scale_intrinsics
from pri3d.geometry.pose import relative_pose, relative_rotation_deg
from pri3d.pretrain.pose_eval import POSE_THRESHOLDS, feature_matches, pose_summary, solve_pair

__all__ = [
    "RADII",
    "IMAGE_RADII",
    "ROTATION_BINS",
    "OVERLAP_BINS",
    "matching_recall",
    "bin_records",
    "delta",
    "format_recall",
    "evaluate_matching",
    "evaluate_pose_pairs",
]

RADII = (1.0, 2.0, 4.0, 8.0)  # feature pixels
IMAGE_RADII = (2.0, 4.0, 8.0, 16.0)  # input-image pixels at the evaluated resolution
ROTATION_BINS = (0.0, 15.0, 30.0, 60.0, 180.0)  # degrees of relative camera rotation
OVERLAP_BINS = (0.3, 0.4, 0.5, 0.7, 1.0)  # pair overlap (pri3d prepare keeps >= 0.3 by default)


def _bin_labels(edges) -> list[str]:
    return [f"{_edge(lo)}-{_edge(hi)}" for lo, hi in zip(edges[:-1], edges[1:])]


def _edge(v: float) -> str:
    return f"{v:.1f}" if 0 < v <= 1 else f"{v:g}"  # overlaps 0.3-0.4 ... 0.7-1.0; degrees 0-15 ... 60-180


def _bin_of(value: float, edges) -> str:
    """Half-open bins ``[lo, hi)``, the last one closed; values outside get ``<lo`` / ``>hi``."""
    if value < edges[0]:
        return f"<{_edge(edges[0])}"
    if value > edges[-1]:
        return f">{_edge(edges[-1])}"
    for hi, label in zip(edges[1:], _bin_labels(edges)):
        if value < hi or hi == edges[-1]:
            return label
    raise AssertionError(value)


def bin_records(records: list[dict], key: str, edges, *, radii=IMAGE_RADII, pose: bool = False) -> dict:
    """Per-bin summary of per-pair records.

    Args:
        records: one dict per pair with ``key`` (the binned value), optionally ``dists_img`` (``(P,)``
            match errors in input pixels) and, with ``pose``, the fields of
            :func:`pri3d.pretrain.pose_eval.solve_pair`.
        edges: bin edges (``ROTATION_BINS``, ``OVERLAP_BINS``).
    Returns:
        ``{"lo-hi": {"pairs": n, "points": m, "recall@2px_img": ..., "pose_auc@5": ...}}`` for every bin
        (empty bins too, their metrics None), plus ``<lo`` / ``>hi`` bins when a value falls outside.
    """
    groups: dict[str, list[dict]] = {label: [] for label in _bin_labels(edges)}
    for r in records:
        groups.setdefault(_bin_of(float(r[key]), edges), []).append(r)
    out = {}
    for label, recs in groups.items():
        b: dict = {"pairs": len(recs)}
        if records and "dists_img" in records[0]:
            d = torch.cat([r["dists_img"] for r in recs]) if recs else torch.zeros(0)
            b["points"] = int(len(d))
            for rad in radii:
                b[f"recall@{rad:g}px_img"] = float((d <= rad).float().mean()) if len(d) else None
        if pose:
            s = pose_summary(recs) if recs else {}
            for t in POSE_THRESHOLDS:
                b[f"pose_auc@{t:g}"] = s.get(f"pose_auc@{t:g}")
        out[label] = b
    return out


def delta(res: dict, base: dict) -> dict:
    """Checkpoint minus baseline for every recall, pose-AUC and median key, overall and per bin
    (None where either side has no value)."""

    def diff(a, b):
        if a is None or b is None:
            return None
        if a == b:  # also inf == inf (a median pose error of failed solves)
            return 0.0
        d = a - b
        return None if math.isnan(d) else d

    def wanted(k: str) -> bool:
        return k.startswith(("recall@", "pose_auc@")) or k in ("median_px", "pose_median_err")

    out = {k: diff(res[k], base.get(k)) for k in res if wanted(k)}
    for name in ("by_rotation", "by_overlap"):
        if name in res:
            out[name] = {
                label: {k: diff(v, base[name].get(label, {}).get(k)) for k, v in b.items() if wanted(k)}
                for label, b in res[name].items()
            }
    return out


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
    details: bool = False,
    pose: bool = False,
    stride: int = 2,
    threshold_px: float = 1.0,
) -> dict:
    """Recall of nearest-neighbour feature matches.

    Args:
        backbone: ``(N, 3, H, W) -> (N, C, H/2, W/2)`` network (evaluated in eval mode, restored).
        dataset: a :class:`~pri3d.pretrain.data.PairDataset` built with ``view=True, augment=False``;
            its ``num_matches`` is the number of sampled points per pair.
        max_pairs: evaluate the first ``max_pairs`` pairs (all when None).
        radii: pixel radii at feature resolution.
        details: also ``recall@{2,4,8,16}px_img`` (input-image pixels) and the ``by_rotation`` /
            ``by_overlap`` bins (see the module docstring).
        pose: also the relative-pose AUC from mutual nearest neighbours on a grid of every
            ``stride``-th feature pixel, RANSAC threshold ``threshold_px`` input pixels (implies details).

    Returns:
        ``{"recall@1px": ..., ..., "pairs": n_pairs_with_points, "points": n_points,
        "median_px": median error}`` (plus the keys above).
    """
    from pri3d.pretrain.data import collate_pairs

    n = len(dataset) if max_pairs is None else min(len(dataset), int(max_pairs))
    was_training = backbone.training
    backbone.eval()
    details = details or pose
    dists = []
    records = []
    pairs_used = 0
    try:
        it = range(0, n, batch_size)
        for start in tqdm(it, desc="matching", disable=not progress, leave=False):
            idx = list(range(start, min(n, start + batch_size)))
            samples = [dataset[(i, derive_seed(seed, 3, i))] for i in idx]
            batch = collate_pairs(samples)
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
                d = torch.zeros(0)
                if len(rows):
                    pairs_used += 1
                    fa = feats[b].reshape(C, h * w)[:, rows[:, 1]].t()  # (P, C)
                    fb = feats[B + b].reshape(C, h * w)  # (C, hw)
                    pred = (fa @ fb).argmax(dim=1)
                    du = (pred % w) - (rows[:, 2] % w)
                    dv = torch.div(pred, w, rounding_mode="floor") - torch.div(rows[:, 2], w, rounding_mode="floor")
                    d = torch.sqrt(du.float() ** 2 + dv.float() ** 2).cpu()
                    dists.append(d)
                if details:
                    records.append(
                        _pair_record(
                            samples[b], dataset.pairs[idx[b]], d, feats, b, B, pose, stride, threshold_px, seed
                        )
                    )
    finally:
        backbone.train(was_training)
    d = torch.cat(dists) if dists else torch.zeros(0)
    out = {f"recall@{r:g}px": (float((d <= r).float().mean()) if len(d) else float("nan")) for r in radii}
    out.update(pairs=pairs_used, points=int(len(d)), median_px=float(d.median()) if len(d) else float("nan"))
    if details:
        scale = float(dataset.size[0]) / dataset.feat_size[0]  # input pixels per feature pixel (2)
        for r in IMAGE_RADII:
            out[f"recall@{r:g}px_img"] = float((d * scale <= r).float().mean()) if len(d) else float("nan")
        if pose:
            out.update(pose_summary(records))
        out["by_rotation"] = bin_records(records, "rotation_deg", ROTATION_BINS, pose=pose)
        out["by_overlap"] = bin_records(records, "overlap", OVERLAP_BINS, pose=pose)
    return out


def _pair_record(sample, pair, d, feats, b, B, pose, stride, threshold_px, seed) -> dict:
    """Per-pair fields for the bins: viewpoint change, overlap, match errors in input pixels, pose error."""
    H, W = sample["image_a"].shape[-2:]
    h, w = feats.shape[-2:]
    rec = {
        "rotation_deg": float(relative_rotation_deg(sample["pose_a"].numpy(), sample["pose_b"].numpy())),
        "overlap": float(pair.overlap),
        "dists_img": d * (H / h),
    }
    if pose:
        # the sample's K are those of the feature grids; the solve runs in input pixels
        Ka = scale_intrinsics(sample["K_a"].numpy(), W / w, H / h)
        Kb = scale_intrinsics(sample["K_b"].numpy(), W / w, H / h)
        T_0to1 = relative_pose(sample["pose_a"].numpy(), sample["pose_b"].numpy())
        k0, k1 = feature_matches(feats[b], feats[B + b], (H, W), stride=stride)
        rec.update(solve_pair(k0, k1, Ka, Kb, T_0to1, threshold_px=threshold_px, seed=seed))
    return rec


def format_recall(res: dict) -> str:
    keys = [k for k in res if k.startswith("recall@") and not k.endswith("_img")]
    return "  ".join(f"{k} {res[k]:.3f}" for k in keys) + f"  ({res['points']} points, {res['pairs']} pairs)"


def _load_model(checkpoint: str, arch: str | None, feature_dim: int | None, seed: int):
    """``(ResNetUNet, training resolution or None, description)`` from a checkpoint or a baseline name
    (:func:`pri3d.models.load.load_unet`, shared with ``pri3d probe``)."""
    from pri3d.models.load import load_unet

    return load_unet(checkpoint, arch, feature_dim, seed, what="eval-matching")


def evaluate_matching(
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
    pose: bool = True,
    stride: int = 2,
    threshold_px: float = 1.0,
) -> dict:
    """Recall@{1,2,4,8}px of a checkpoint on pairs of a prepared directory (see :func:`matching_recall`).

    The resolution defaults to the one the checkpoint was trained at (recorded in pre-training
    checkpoints and ``backbone.pth``), else 240x320. ``baseline="scratch"`` (or ``"imagenet"``) also
    evaluates an untrained network of the same arch and feature width, seeded by ``seed``, at the same
    resolution on the same pairs and points; the result then has ``baseline`` (its recalls) and
    ``delta`` (checkpoint minus baseline, overall and per bin: :func:`delta`). The result also has the
    image-pixel recalls and the bins of :func:`matching_recall` (``details``), and with ``pose`` the
    relative-pose AUC (``pose_auc@5/10/20``; ``stride``, ``threshold_px`` as there)."""
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
        return matching_recall(
            net,
            ds,
            device=device,
            seed=seed,
            progress=progress,
            details=True,
            pose=pose,
            stride=stride,
            threshold_px=threshold_px,
        )

    if int(stride) < 1:
        raise DataError(f"grid stride must be >= 1, got {stride}")
    out = run(model)
    out.update(checkpoint=desc, data=str(data), pairs_source=source, resolution=list(res))
    if pose:
        out.update(grid_stride=int(stride), ransac_px=float(threshold_px))
    return _with_baseline(out, baseline, model, seed, run)


def _read_image(path: Path, size) -> tuple[torch.Tensor, tuple[int, int]]:
    """``((3, H, W) normalised tensor at ``size``, (H0, W0) size on disk)``."""
    from pri3d.data.io import read_color, resize_color
    from pri3d.pretrain.augment import ColorAugment

    img = read_color(path)
    return ColorAugment(enabled=False)(resize_color(img, size)), img.shape[:2]


def _scaled_K(K: np.ndarray, disk_size, size, where: str) -> np.ndarray:
    """K of the image as stored, scaled to the evaluated ``size`` (pixel-centre convention, as the
    resize); the principal point must lie inside the stored image (a K for another size is an error)."""
    from pri3d.errors import DataError

    H0, W0 = disk_size
    if not (-0.5 <= K[0, 2] <= W0 - 0.5 and -0.5 <= K[1, 2] <= H0 - 0.5):
        raise DataError(
            f"{where}: the principal point ({K[0, 2]:g}, {K[1, 2]:g}) lies outside the {W0}x{H0} image; "
            "K must be for the image as stored (ScanNet colour: 1296x968)"
        )
    return scale_intrinsics(K, size[1] / W0, size[0] / H0)


@torch.no_grad()
def _pose_records(net, pairs, images_dir: Path, pairs_file, size, *, device, stride, threshold_px, seed, progress):
    was_training = net.training
    net.eval()
    recs = []
    try:
        for p in tqdm(pairs, desc="pose", disable=not progress, leave=False):
            im0, s0 = _read_image(images_dir / p.name0, size)
            im1, s1 = _read_image(images_dir / p.name1, size)
            K0 = _scaled_K(p.K0, s0, size, f"{pairs_file}:{p.line}: K0")
            K1 = _scaled_K(p.K1, s1, size, f"{pairs_file}:{p.line}: K1")
            feats = F.normalize(net(torch.stack([im0, im1]).to(device)).float(), dim=1)
            k0, k1 = feature_matches(feats[0], feats[1], size, stride=stride)
            r = solve_pair(k0, k1, K0, K1, p.T_0to1, threshold_px=threshold_px, seed=seed)
            r["rotation_deg"] = float(relative_rotation_deg(np.eye(3), p.T_0to1[:3, :3]))
            recs.append(r)
    finally:
        net.train(was_training)
    return recs


def evaluate_pose_pairs(
    checkpoint,
    pairs_file,
    images_dir,
    *,
    resolution=None,
    arch=None,
    feature_dim=None,
    device: str = "auto",
    seed: int = 0,
    max_pairs: int | None = None,
    stride: int = 2,
    threshold_px: float = 1.0,
    progress: bool = False,
    baseline: str | None = None,
) -> dict:
    """Relative-pose AUC of a checkpoint on a pair list in the ScanNet test-pair format
    (:mod:`pri3d.pairs.pose_list`; :mod:`pri3d.pretrain.pose_eval` for the method).

    Images are read from ``images_dir``, resized to ``resolution`` (default: the checkpoint's training
    resolution, else 240x320; SuperGlue and LoFTR evaluate at 480x640) and their K's scaled to it.
    ``max_pairs`` takes the first N pairs of the file. ``baseline`` as in :func:`evaluate_matching`.

    Returns:
        ``{"pose_auc@5", "pose_auc@10", "pose_auc@20", "pose_pairs", "pose_failures", "pose_median_err",
        "median_matches", "by_rotation": {"0-15": {"pairs", "pose_auc@5", ...}, ...}, "checkpoint",
        "pairs_file", "images", "resolution", "grid_stride", "ransac_px"}`` (+ ``baseline``, ``delta``).
    """
    from pri3d.errors import DataError
    from pri3d.pairs.pose_list import read_pose_pairs

    model, ckpt_res, desc = _load_model(str(checkpoint), arch, feature_dim, seed)
    size = tuple(int(v) for v in resolution) if resolution else (ckpt_res or (240, 320))
    if any(v % 4 for v in size):
        raise DataError(f"resolution {size}: both sides must be multiples of 4")
    if int(stride) < 1:
        raise DataError(f"grid stride must be >= 1, got {stride}")
    pairs = read_pose_pairs(pairs_file, images_dir)
    if max_pairs is not None:
        pairs = pairs[: int(max_pairs)]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"

    def run(net) -> dict:
        net.to(device)
        recs = _pose_records(
            net,
            pairs,
            Path(images_dir),
            pairs_file,
            size,
            device=device,
            stride=int(stride),
            threshold_px=float(threshold_px),
            seed=seed,
            progress=progress,
        )
        out = pose_summary(recs)
        out["by_rotation"] = bin_records(recs, "rotation_deg", ROTATION_BINS, pose=True)
        return out

    out = run(model)
    out.update(
        checkpoint=desc,
        pairs_file=str(pairs_file),
        images=str(images_dir),
        resolution=list(size),
        grid_stride=int(stride),
        ransac_px=float(threshold_px),
    )
    return _with_baseline(out, baseline, model, seed, run)


def _with_baseline(out: dict, baseline: str | None, model, seed: int, run) -> dict:
    """``out`` plus, with ``baseline`` (``scratch`` / ``imagenet``), the same evaluation ``run`` of an
    untrained network of ``model``'s arch and width (``baseline``) and the paired difference (``delta``)."""
    from pri3d.errors import DataError

    if baseline:
        if baseline not in ("scratch", "imagenet"):
            raise DataError(f"baseline must be 'scratch' or 'imagenet', got {baseline!r}")
        base, _, base_desc = _load_model(baseline, model.arch, model.feature_dim, seed)
        b = run(base)
        b["checkpoint"] = base_desc
        out["baseline"] = b
        out["delta"] = delta(out, b)
    return out
