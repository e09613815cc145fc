import pytest

from pri3d.downstream.fractions import select_fraction, select_units
from pri3d.errors import ConfigError

ITEMS = [(f"scene{s:04d}_00", f) for s in range(20) for f in range(0, 500, 100)]


@pytest.mark.parametrize("by", ["scene", "image"])
def test_deterministic_and_nested(by):
    subsets = {f: select_fraction(ITEMS, f, by=by, seed=3) for f in (0.2, 0.4, 0.6, 0.8, 1.0)}
    assert subsets[1.0] == ITEMS
    fr = (0.2, 0.4, 0.6, 0.8, 1.0)
    for small, large in zip(fr, fr[1:]):
        assert set(subsets[small]) < set(subsets[large])
    assert select_fraction(ITEMS, 0.4, by=by, seed=3) == subsets[0.4]  # same seed, same subset
    assert select_fraction(list(reversed(ITEMS)), 0.4, by=by, seed=3) == list(reversed(subsets[0.4]))  # order-free
    assert set(select_fraction(ITEMS, 0.4, by=by, seed=4)) != set(subsets[0.4])


def test_by_scene_keeps_whole_scenes_and_sizes():
    sub = select_fraction(ITEMS, 0.2, by="scene", seed=0)
    scenes = {s for s, _ in sub}
    assert len(scenes) == 4 and len(sub) == 20  # ceil(0.2 * 20) scenes, all 5 frames each
    img = select_fraction(ITEMS, 0.2, by="image", seed=0)
    assert len(img) == 20 and len({s for s, _ in img}) > 4
    assert select_units(["a"], 0.01, seed=0) == ["a"]  # at least one unit


@pytest.mark.parametrize("bad", [0, -0.2, 1.5, float("nan"), "x"])
def test_fraction_outside_range_is_an_error(bad):
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        select_fraction(ITEMS, bad)


def test_bad_fraction_by():
    with pytest.raises(ConfigError, match="scene, image"):
        select_fraction(ITEMS, 0.5, by="frame")
