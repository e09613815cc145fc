"""The ScanNet test-pair format of SuperGlue / LoFTR: a file the test writes, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from pri3d.errors import DataError
from pri3d.pairs.pose_list import read_pose_pairs

K0 = np.array([[1165.72, 0.0, 649.095], [0.0, 1165.74, 484.765], [0.0, 0.0, 1.0]])
K1 = np.array([[1161.0, 0.0, 650.0], [0.0, 1160.0, 480.0], [0.0, 0.0, 1.0]])
# the first pair of SuperGlue's assets/scannet_test_pairs_with_gt.txt
T = np.array(
    [
        [0.97598, 0.05925, 0.20966, -0.03968],
        [-0.08203, 0.99143, 0.10171, 0.00746],
        [-0.20184, -0.11647, 0.97247, 0.54255],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def line(name0="a.jpg", name1="b.jpg", K0=K0, K1=K1, T=T, rot=(0, 0)) -> str:
    vals = [*np.ravel(K0), *np.ravel(K1), *np.ravel(T)]
    return " ".join([name0, name1, str(rot[0]), str(rot[1]), *(f"{v:.6g}" for v in vals)])


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "images"
    (d / "scene").mkdir(parents=True)
    for n in ("a.jpg", "b.jpg", "scene/c.jpg"):
        (d / n).write_bytes(b"not read here")
    return d


def test_reads_names_intrinsics_and_relative_pose(tmp_path, images):
    f = tmp_path / "pairs.txt"
    f.write_text("# a comment\n" + line() + "\n\n" + line("scene/c.jpg", "a.jpg", K1, K0) + "\n")
    pairs = read_pose_pairs(f, images)
    assert [(p.name0, p.name1, p.line) for p in pairs] == [("a.jpg", "b.jpg", 2), ("scene/c.jpg", "a.jpg", 4)]
    np.testing.assert_allclose(pairs[0].K0, K0, rtol=1e-6)
    np.testing.assert_allclose(pairs[0].K1, K1, rtol=1e-6)
    np.testing.assert_allclose(pairs[0].T_0to1, T, rtol=1e-6)
    np.testing.assert_allclose(pairs[1].K0, K1, rtol=1e-6)
    assert read_pose_pairs(f)[0].name0 == "a.jpg"  # without an image folder: no existence check


def test_wrong_field_count_names_file_and_line(tmp_path, images):
    f = tmp_path / "pairs.txt"
    short = line().rsplit(" ", 1)[0]  # 37 fields
    f.write_text(line() + "\n" + short + "\n")
    with pytest.raises(DataError, match=r"pairs\.txt:2: 37 fields, expected 38"):
        read_pose_pairs(f, images)


def test_missing_image(tmp_path, images):
    f = tmp_path / "pairs.txt"
    f.write_text(line("a.jpg", "nope.jpg") + "\n")
    with pytest.raises(DataError, match=r"pairs\.txt:1: image .*nope\.jpg not found"):
        read_pose_pairs(f, images)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((3, 3)), np.array([[500.0, 0, 320], [0, 0, 240], [0, 0, 1]]), np.full((3, 3), np.nan)],
    ids=["zero", "zero-fy", "nan"],
)
def test_singular_or_non_finite_K(tmp_path, images, bad):
    f = tmp_path / "pairs.txt"
    f.write_text(line(K1=bad) + "\n")
    with pytest.raises(DataError, match=r"pairs\.txt:1: K1 is singular or not finite"):
        read_pose_pairs(f, images)


def test_non_rigid_T_and_other_errors(tmp_path, images):
    f = tmp_path / "pairs.txt"
    scaled = T.copy()
    scaled[:3, :3] *= 2.0
    for text, msg in [
        (line(T=scaled), "T_0to1 is not a finite rigid transform"),
        (line().replace("1165.72", "x", 1), "not a number"),
        (line(rot=(1, 0)), "rotated pairs"),
        ("# only a comment\n", "no pairs"),
    ]:
        f.write_text(text + "\n")
        with pytest.raises(DataError, match=msg):
            read_pose_pairs(f, images)
    with pytest.raises(DataError, match="pair list not found"):
        read_pose_pairs(tmp_path / "none.txt", images)
    f.write_text(line() + "\n")
    with pytest.raises(DataError, match="image folder not found"):
        read_pose_pairs(f, tmp_path / "no-images")
