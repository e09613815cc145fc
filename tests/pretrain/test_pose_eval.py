"""Correspondence by viewpoint change and relative pose from dense features (pretrain/pose_eval.py and the
bins and pair-list path of pretrain/matching_eval.py), through the library and ``pri3d eval-matching``."""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F

from pri3d.cli import main
from pri3d.geometry.camera import backproject_depth, project_points, scale_intrinsics
from pri3d.geometry.pose import relative_pose
from pri3d.pretrain.matching_eval import OVERLAP_BINS, ROTATION_BINS, bin_records
from pri3d.pretrain.pose_eval import feature_matches, mutual_nn, pose_summary, solve_pair


def test_mutual_nearest_neighbours():
    fa = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    fb = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    ia, ib = mutual_nn(fa, fb)
    assert sorted(zip(ia.tolist(), ib.tolist())) == [(0, 1), (1, 0)]  # a2's best (b1) prefers a0
    ia2, ib2 = mutual_nn(fa, fb, chunk=1)  # the chunked column maximum gives the same answer
    assert ia2.tolist() == ia.tolist() and ib2.tolist() == ib.tolist()
    assert len(mutual_nn(fa[:0], fb)[0]) == 0


def test_feature_matches_are_feature_pixel_centres_in_input_pixels():
    g = torch.Generator().manual_seed(0)
    fa = F.normalize(torch.randn(16, 12, 16, generator=g), dim=0)
    fb = torch.roll(fa, shifts=(1, 2), dims=(1, 2))  # B sees A's content 1 row down, 2 columns right
    k0, k1 = feature_matches(fa, fb, (24, 32), stride=1)
    inside = (k0[:, 0] < 32 - 4.5) & (k0[:, 1] < 24 - 2.5)  # away from the wrapped border
    assert inside.sum() > 100
    np.testing.assert_allclose(k1[inside] - k0[inside], np.tile([4.0, 2.0], (inside.sum(), 1)))  # 2 input px each
    assert set(np.unique(k0[:, 0] % 2)) == {0.5}  # feature pixel j is input pixel 2j + 0.5
    k0s, _ = feature_matches(fa, fb, (24, 32), stride=4)
    assert len(k0s) <= 3 * 4


def test_prepared_pair_conventions_give_zero_pose_error(prepared_dir):
    """The prepared pairs' K (feature grid, scaled to input pixels) and T_0to1 = inv(T_b) T_a, with exact
    correspondences of A's feature-pixel centres, give a pose error near 0."""
    from pri3d.pairs.store import PreparedData
    from pri3d.pretrain.data import PairDataset

    prep = PreparedData(prepared_dir)
    ds = PairDataset(prep, prep.pairs[:4], resolution=(48, 64), view=True, augment=False, num_matches=8)
    recs = []
    for i in range(len(ds)):
        s = ds[(i, 0)]
        (H, W), (h, w) = (48, 64), s["depth_a"].shape
        Ka = scale_intrinsics(s["K_a"].numpy(), W / w, H / h)
        Kb = scale_intrinsics(s["K_b"].numpy(), W / w, H / h)
        pts = backproject_depth(s["depth_a"].double()[None], s["K_a"], s["pose_a"])[0].reshape(-1, 3)
        uv, z = project_points(pts[None], torch.as_tensor(Kb), s["pose_b"])
        ok = (s["depth_a"].reshape(-1) > 0) & (z[0] > 0)
        idx = torch.nonzero(ok)[:, 0]
        k0 = torch.stack([(idx % w + 0.5) * W / w - 0.5, (idx // w + 0.5) * H / h - 0.5], 1).double().numpy()
        T = relative_pose(s["pose_a"].numpy(), s["pose_b"].numpy())
        # exact matches: a tight threshold (at 48x64, f ~ 58 px, 1 px lets RANSAC keep a wrong E of a
        # near-pure rotation with every point an inlier on the 8 cm baselines of these pairs)
        recs.append(solve_pair(k0, uv[0, idx].numpy(), Ka, Kb, T, threshold_px=0.1))
    assert max(r["err"] for r in recs) < 0.5, [(r, p) for r, p in zip(recs, prep.pairs)]
    assert pose_summary(recs)["pose_auc@5"] > 0.9


def test_bins_count_pairs_and_points():
    recs = [
        {"rotation_deg": 0.0, "overlap": 0.3, "dists_img": torch.tensor([0.0, 3.0])},
        {"rotation_deg": 15.0, "overlap": 0.45, "dists_img": torch.tensor([10.0])},
        {"rotation_deg": 180.0, "overlap": 1.0, "dists_img": torch.zeros(0)},
    ]
    rot = bin_records(recs, "rotation_deg", ROTATION_BINS)
    assert list(rot) == ["0-15", "15-30", "30-60", "60-180"]
    assert [b["pairs"] for b in rot.values()] == [1, 1, 0, 1]
    assert rot["0-15"]["points"] == 2 and rot["0-15"]["recall@2px_img"] == 0.5 and rot["0-15"]["recall@4px_img"] == 1
    assert rot["30-60"]["recall@4px_img"] is None and rot["60-180"]["points"] == 0
    ov = bin_records(recs, "overlap", OVERLAP_BINS)
    assert list(ov) == ["0.3-0.4", "0.4-0.5", "0.5-0.7", "0.7-1.0"]
    assert [b["pairs"] for b in ov.values()] == [1, 1, 0, 1]
    assert "<0.3" in bin_records([{"overlap": 0.1, "dists_img": torch.zeros(1)}], "overlap", OVERLAP_BINS)


def test_eval_matching_on_prepared_data_reports_bins_and_pose(prepared_dir, capsys):
    capsys.readouterr()
    args = ["eval-matching", "--checkpoint", "scratch", "--arch", "resnet18", "--data", str(prepared_dir)]
    assert main([*args, "--resolution", "32", "48", "--points", "32", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    for k in ("recall@1px", "recall@4px", "recall@2px_img", "recall@16px_img", "pose_auc@5", "pose_auc@20"):
        assert k in res, k
    assert res["recall@4px_img"] == res["recall@2px"]  # a feature pixel is two input pixels
    assert set(res["by_rotation"]) == {"0-15", "15-30", "30-60", "60-180"}
    assert set(res["by_overlap"]) == {"0.3-0.4", "0.4-0.5", "0.5-0.7", "0.7-1.0"}
    for name in ("by_rotation", "by_overlap"):
        assert sum(b["pairs"] for b in res[name].values()) == res["pose_pairs"] >= res["pairs"] > 0
        assert sum(b["points"] for b in res[name].values()) == res["points"]
    assert all("recall@4px_img" in b and "pose_auc@10" in b for b in res["by_rotation"].values())
    assert 0.0 <= res["pose_auc@20"] <= 1.0
    # the same untrained network as a baseline: every difference, overall and per bin, is 0 (or None)
    assert main([*args, "--resolution", "32", "48", "--points", "32", "--baseline", "scratch", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)["delta"]
    flat = [v for k, v in d.items() if not k.startswith("by_")]
    flat += [v for name in ("by_rotation", "by_overlap") for b in d[name].values() for v in b.values()]
    assert flat and all(v in (0.0, None) for v in flat), d
    # the text report prints the bins
    assert main([*args, "--resolution", "32", "48", "--points", "32", "--no-pose"]) == 0
    text = capsys.readouterr().out
    assert "by relative rotation (deg)" in text and "0.7-1.0" in text and "pose AUC" not in text


def _scannet_pair_list(synth, path, pairs):
    """Write ``pairs`` ((scene, frame0, frame1), ...) of a synthetic dataset in the ScanNet test-pair format."""
    lines = []
    for scene, i, j in pairs:
        d = synth / scene
        K = np.loadtxt(d / "intrinsic" / "intrinsic_color.txt")[:3, :3]
        T = relative_pose(np.loadtxt(d / "pose" / f"{i}.txt"), np.loadtxt(d / "pose" / f"{j}.txt"))
        vals = [*K.ravel(), *K.ravel(), *T.ravel()]
        lines.append(
            " ".join([f"{scene}/color/{i}.jpg", f"{scene}/color/{j}.jpg", "0", "0", *(repr(float(v)) for v in vals)])
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def test_eval_matching_on_a_scannet_pair_list(prepared_dir, tmp_path, capsys):
    synth = prepared_dir.parent / "synth"
    f = _scannet_pair_list(
        synth, tmp_path / "pairs.txt", [("scene0000_00", 0, 2), ("scene0000_00", 1, 4), ("scene0001_00", 0, 3)]
    )
    capsys.readouterr()
    args = ["eval-matching", "--checkpoint", "scratch", "--arch", "resnet18", "--pairs", str(f)]
    assert main([*args, "--images", str(synth), "--resolution", "48", "64", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    for t in (5, 10, 20):
        assert 0.0 <= res[f"pose_auc@{t}"] <= 1.0
    assert res["pose_pairs"] == 3 and res["resolution"] == [48, 64]
    assert sum(b["pairs"] for b in res["by_rotation"].values()) == 3
    assert main([*args, "--images", str(synth), "--resolution", "48", "64"]) == 0
    assert "pose AUC@5/10/20" in capsys.readouterr().out
    # one-line errors: a 37-field line, a missing image, a K for another image size, --images and --data
    bad = tmp_path / "bad.txt"
    bad.write_text(f.read_text().splitlines()[0] + "\n" + f.read_text().splitlines()[1].rsplit(" ", 1)[0] + "\n")
    missing = tmp_path / "missing.txt"
    missing.write_text(f.read_text().replace("color/4.jpg", "color/99.jpg"))
    big_k = tmp_path / "bigk.txt"
    big_k.write_text(f.read_text().replace(" 39.5 ", " 649.0 "))
    for pair_file, msg in [
        (bad, "bad.txt:2: 37 fields, expected 38"),
        (missing, "99.jpg not found"),
        (big_k, "lies outside the 80x60 image"),
    ]:
        rc = main(
            ["eval-matching", "--checkpoint", "scratch", "--arch", "resnet18", "--pairs", str(pair_file)]
            + [
                "--images",
                str(synth),
                "--resolution",
                "48",
                "64",
            ]
        )
        err = capsys.readouterr().err
        assert rc == 1 and msg in err and err.count("\n") == 1, err
    assert main([*args, "--images", str(synth), "--data", str(prepared_dir)]) == 1
    assert "not both" in capsys.readouterr().err
