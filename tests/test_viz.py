import numpy as np

from pri3d.viz import colorize_labels, depth_to_rgb, hstack, match_overlay, pca_rgb, plot_curves, save_png, vstack


def test_pca_rgb_separates_clusters_and_shares_basis():
    rng = np.random.default_rng(0)
    f = rng.normal(0, 0.01, size=(8, 10, 16))
    f[:, :5, 0] += 1.0  # left half differs along one feature direction
    img = pca_rgb(f)
    assert img.shape == (8, 10, 3) and img.dtype == np.uint8
    left, right = img[:, :5].reshape(-1, 3).mean(0), img[:, 5:].reshape(-1, 3).mean(0)
    assert np.abs(left - right).max() > 100
    # a shared basis gives identical colours for identical features
    img2 = pca_rgb(f, basis_from=f.reshape(-1, 16))
    assert np.array_equal(img, img2)
    mask = np.zeros((8, 10), bool)
    assert pca_rgb(f, mask=mask).max() == 0


def test_colorize_and_depth():
    lab = np.array([[0, 1], [2, 255]])
    c = colorize_labels(lab, num_classes=3, ignore_index=255)
    assert c.shape == (2, 2, 3)
    assert not np.array_equal(c[0, 1], c[1, 0])
    assert c[1, 1].tolist() == [0, 0, 0]
    d = depth_to_rgb(np.array([[0.0, 1.0], [2.0, 3.0]], np.float32))
    assert d[0, 0].tolist() == [0, 0, 0] and d[1, 1].any()


def test_overlay_and_stacks(tmp_path):
    a = np.zeros((20, 30, 3), np.uint8)
    b = np.zeros((20, 40, 3), np.uint8)
    o = match_overlay(a, b, np.array([[1.0, 1.0], [10, 10]]), np.array([[5.0, 5.0], [30, 15]]))
    assert o.shape == (20, 70, 3) and o.any()
    g = vstack([hstack([a, b]), o])
    assert g.shape[1] == 74 and g.shape[0] == 44
    p = save_png(tmp_path / "g.png", g)
    assert p.stat().st_size > 0


def test_plot_curves(tmp_path):
    p = plot_curves(
        tmp_path / "c.png",
        {"a": ([20, 40], [1.0, 2.0], [0.1, 0.2]), "b": ([20, 40], [1.5, 2.5], None)},
        xlabel="% labels",
        ylabel="mIoU",
    )
    assert p.read_bytes()[:4] == b"\x89PNG"
