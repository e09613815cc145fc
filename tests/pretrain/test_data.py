import torch

from pri3d.geometry.camera import backproject_depth, scale_intrinsics
from pri3d.pairs.store import PreparedData
from pri3d.pretrain.data import PairDataset, split_pairs


def _dataset(prepared_dir, **kw):
    p = PreparedData(prepared_dir)
    train, val, _ = split_pairs(p)
    return p, PairDataset(p, train, resolution=(32, 48), num_matches=50, **kw)


def test_held_out_scenes_never_reach_training(prepared_dir):
    p = PreparedData(prepared_dir)
    train, val, _ = split_pairs(p)
    assert train and val
    val_scenes = (p.input_path / "splits" / "val.txt").read_text().split()
    assert all(q.scene not in val_scenes for q in train) and all(q.scene in val_scenes for q in val)


def test_view_matches_are_the_same_surface_point(prepared_dir):
    p, ds = _dataset(prepared_dir)
    s = ds[(0, 7)]
    m = s["view"]
    assert 0 < len(m) <= 50 and len(set(m[:, 0].tolist())) == len(m)  # sampled without replacement
    pair = ds.pairs[0]
    pts = []
    for fid, d in ((pair.frame_a, s["depth_a"]), (pair.frame_b, s["depth_b"])):
        fr = ds.scenes[pair.scene].load_frame(fid, labels=False)
        Hc, Wc = fr.color.shape[:2]
        K = scale_intrinsics(torch.as_tensor(fr.color_intrinsics), 24 / Wc, 16 / Hc)
        pts.append(backproject_depth(d.double()[None], K, torch.as_tensor(fr.pose))[0].reshape(-1, 3))
    dist = (pts[0][m[:, 0]] - pts[1][m[:, 1]]).norm(dim=1)
    # one feature pixel spans a few cm at these depths; a wrong match would be metres away
    assert float(dist.median()) < 0.15


def test_geo_matches_land_on_voxels_near_the_pixel(prepared_dir):
    p, ds = _dataset(prepared_dir, view=False, geo=True)
    s = ds[(1, 3)]
    local, feats, m = s["vox_a"]
    assert local.min() >= 0 and feats.shape == (len(local), 1) and len(m) > 0
    pair = ds.pairs[1]
    vox = p.voxels(pair.scene)
    coords, _ = vox.crop(pair.frame_a)
    fr = ds.scenes[pair.scene].load_frame(pair.frame_a, labels=False)
    Hc, Wc = fr.color.shape[:2]
    K = scale_intrinsics(torch.as_tensor(fr.color_intrinsics), 24 / Wc, 16 / Hc)
    pts = backproject_depth(s["depth_a"].double()[None], K, torch.as_tensor(fr.pose))[0].reshape(-1, 3)
    centres = torch.as_tensor(vox.origin) + (torch.as_tensor(coords[m[:, 1].numpy()]).double() + 0.5) * vox.voxel_size
    assert float((pts[m[:, 0]] - centres).norm(dim=1).max()) <= vox.voxel_size + 1e-9  # radius = voxel size
    assert torch.equal(local, torch.as_tensor(coords) - torch.as_tensor(coords).min(0).values)


def test_trivial_mode_and_determinism(prepared_dir):
    _, ds = _dataset(prepared_dir, trivial=True)
    s = ds[(0, 11)]
    assert torch.equal(s["view"][:, 0], s["view"][:, 1])
    again = ds[(0, 11)]
    assert torch.equal(s["image_a"], again["image_a"]) and torch.equal(s["view"], again["view"])
    other = ds[(0, 12)]
    assert not torch.equal(s["view"], other["view"])


def test_frustum_crop_keeps_fewer_voxels_and_the_matches(prepared_dir):
    _, box = _dataset(prepared_dir, view=False, geo=True)
    _, fru = _dataset(prepared_dir, view=False, geo=True, voxel_crop="frustum")
    a, b = box[(2, 5)]["vox_a"], fru[(2, 5)]["vox_a"]
    assert 0 < len(b[0]) < len(a[0])
    assert len(b[2]) == len(a[2])  # every sampled pixel still finds its voxel


def test_crop_margin_grows_the_chunk_at_random(prepared_dir):
    _, tight = _dataset(prepared_dir, view=False, geo=True)
    _, loose = _dataset(prepared_dir, view=False, geo=True, crop_margin=0.5)
    n_tight = len(tight[(0, 1)]["vox_a"][0])
    sizes = {len(loose[(0, s)]["vox_a"][0]) for s in range(1, 4)}
    assert min(sizes) >= n_tight and len(sizes) > 1


def _world_points(s, side):
    d = s[f"depth_{side}"].double()[None]
    return backproject_depth(d, s[f"K_{side}"], s[f"pose_{side}"])[0].reshape(-1, 3)


def test_cropped_and_flipped_views_still_match_the_same_surface_point(prepared_dir):
    _, plain = _dataset(prepared_dir)
    _, aug = _dataset(prepared_dir, crop_scale=(0.3, 1.0), flip=True)
    _, trivial = _dataset(prepared_dir, trivial=True, crop_scale=(0.3, 1.0), flip=True)
    flipped = 0
    for seed in range(6):
        s = aug[(0, seed)]
        m = s["view"]
        assert len(m) > 0
        dist = (_world_points(s, "a")[m[:, 0]] - _world_points(s, "b")[m[:, 1]]).norm(dim=1)
        assert float(dist.median()) < 0.15
        flipped += int(s["K_a"][0, 0] < 0) + int(s["K_b"][0, 0] < 0)
        assert not torch.equal(s["K_a"], plain[(0, seed)]["K_a"])  # the crop changed the view
        t = trivial[(0, seed)]  # two crops of one frame: positives are the same point, not the same pixel
        d = (_world_points(t, "a")[t["view"][:, 0]] - _world_points(t, "b")[t["view"][:, 1]]).norm(dim=1)
        assert float(d.median()) < 0.15 and not torch.equal(t["view"][:, 0], t["view"][:, 1])
    assert 0 < flipped < 12
    again = aug[(0, 3)]
    assert torch.equal(again["image_a"], aug[(0, 3)]["image_a"])  # seeded: exact resume still holds
    # evaluation datasets never augment
    _, ev = _dataset(prepared_dir, crop_scale=(0.3, 1.0), flip=True, augment=False)
    assert torch.equal(ev[(0, 1)]["K_a"], plain[(0, 1)]["K_a"])
