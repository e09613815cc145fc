"""Pictures for reports: feature PCA, correspondence overlays, label colouring, image grids, plots.

Pure functions on numpy arrays returning uint8 RGB images; :func:`save_png` writes them. Plots use
matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "pca_rgb",
    "colorize_labels",
    "depth_to_rgb",
    "match_overlay",
    "hstack",
    "vstack",
    "save_png",
    "plot_curves",
]


def pca_rgb(features: np.ndarray, basis_from: np.ndarray | None = None, mask: np.ndarray | None = None) -> np.ndarray:
    """Project ``(H, W, C)`` features onto their first three principal components -> ``(H, W, 3)`` uint8.

    ``basis_from`` (``(N, C)``) fixes the PCA basis and the colour range, so several images (e.g. the
    frames of one figure) share one colouring. ``mask`` (``(H, W)`` bool) blacks out pixels.
    """
    H, W, C = features.shape
    X = features.reshape(-1, C).astype(np.float64)
    ref = X if basis_from is None else basis_from.astype(np.float64)
    mean = ref.mean(0)
    # SVD of the reference set; sign fixed so colours are stable across runs.
    _, _, Vt = np.linalg.svd(ref - mean, full_matrices=False)
    V = Vt[:3].T
    V = V * np.sign(V[np.abs(V).argmax(0), range(V.shape[1])])
    proj_ref = (ref - mean) @ V
    lo, hi = np.percentile(proj_ref, 1, axis=0), np.percentile(proj_ref, 99, axis=0)
    proj = ((X - mean) @ V - lo) / np.maximum(hi - lo, 1e-12)
    if proj.shape[1] < 3:
        proj = np.concatenate([proj, np.zeros((proj.shape[0], 3 - proj.shape[1]))], 1)
    img = (np.clip(proj, 0, 1) * 255).astype(np.uint8).reshape(H, W, 3)
    if mask is not None:
        img[~mask] = 0
    return img


def _palette(n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pal = rng.integers(40, 256, size=(max(n, 1), 3)).astype(np.uint8)
    pal[0] = 0
    return pal


def colorize_labels(labels: np.ndarray, num_classes: int = 256, ignore_index: int | None = None) -> np.ndarray:
    """``(H, W)`` integer labels -> ``(H, W, 3)`` uint8 with a fixed palette (ignore -> black)."""
    pal = _palette(max(num_classes, int(labels.max(initial=0)) + 1) + 1)
    lab = labels.astype(np.int64)
    out = pal[np.clip(lab + 1, 0, len(pal) - 1)]
    if ignore_index is not None:
        out[labels == ignore_index] = 0
    return out


def depth_to_rgb(depth: np.ndarray, max_depth: float | None = None) -> np.ndarray:
    """``(H, W)`` metres -> ``(H, W, 3)`` uint8 (turbo colormap, invalid = black)."""
    import matplotlib

    valid = depth > 0
    hi = max_depth if max_depth else (float(np.percentile(depth[valid], 99)) if valid.any() else 1.0)
    cmap = matplotlib.colormaps["turbo"]
    img = (cmap(np.clip(depth / max(hi, 1e-6), 0, 1))[..., :3] * 255).astype(np.uint8)
    img[~valid] = 0
    return img


def match_overlay(
    img_a: np.ndarray,
    img_b: np.ndarray,
    uv_a: np.ndarray,
    uv_b: np.ndarray,
    max_lines: int = 60,
    seed: int = 0,
    colors: np.ndarray | None = None,
) -> np.ndarray:
    """Side-by-side images with lines joining matched pixels ``uv_a[i] <-> uv_b[i]`` (``(N, 2)``,
    column/row in each image's own pixels). A random subset of ``max_lines`` matches is drawn, each in its
    own colour, or in ``colors[i]`` (``(N, 3)`` uint8 RGB) when given."""
    import cv2

    ha, wa = img_a.shape[:2]
    hb, wb = img_b.shape[:2]
    canvas = np.zeros((max(ha, hb), wa + wb, 3), np.uint8)
    canvas[:ha, :wa] = img_a
    canvas[:hb, wa:] = img_b
    canvas = np.ascontiguousarray(canvas)
    n = len(uv_a)
    if n:
        idx = np.random.default_rng(seed).choice(n, size=min(n, max_lines), replace=False)
        pal = colors[idx] if colors is not None else _palette(len(idx) + 1, seed=7)[1:]
        for c, i in zip(pal, idx):
            pa = (int(round(uv_a[i, 0])), int(round(uv_a[i, 1])))
            pb = (int(round(uv_b[i, 0])) + wa, int(round(uv_b[i, 1])))
            color = tuple(int(x) for x in c)
            cv2.line(canvas, pa, pb, color, 1, cv2.LINE_AA)
            cv2.circle(canvas, pa, 2, color, -1)
            cv2.circle(canvas, pb, 2, color, -1)
    return canvas


def _fit(img: np.ndarray, h: int | None = None, w: int | None = None) -> np.ndarray:
    import cv2

    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if h is not None and img.shape[0] != h:
        img = cv2.resize(img, (round(img.shape[1] * h / img.shape[0]), h), interpolation=cv2.INTER_NEAREST)
    if w is not None and img.shape[1] != w:
        img = cv2.resize(img, (w, round(img.shape[0] * w / img.shape[1])), interpolation=cv2.INTER_NEAREST)
    return img


def hstack(images: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Images side by side, resized to the first one's height, separated by white gaps."""
    h = images[0].shape[0]
    parts = []
    for i, im in enumerate(images):
        if i:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
        parts.append(_fit(im, h=h))
    return np.concatenate(parts, axis=1)


def vstack(images: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Images stacked vertically, resized to the widest one's width."""
    w = max(im.shape[1] for im in images)
    parts = []
    for i, im in enumerate(images):
        if i:
            parts.append(np.full((gap, w, 3), 255, np.uint8))
        im = _fit(im)
        if im.shape[1] != w:
            pad = np.full((im.shape[0], w - im.shape[1], 3), 255, np.uint8)
            im = np.concatenate([im, pad], axis=1)
        parts.append(im)
    return np.concatenate(parts, axis=0)


def save_png(path, img: np.ndarray) -> Path:
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write PNG")
    return path


def plot_curves(
    path,
    series: dict[str, tuple[list[float], list[float], list[float] | None]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = False,
    hlines: dict[str, float] | None = None,
) -> Path:
    """Line plot with optional error bars. ``series[name] = (x, y_mean, y_std_or_None)``; ``logx``: log-scale
    x axis; ``hlines``: dashed horizontal reference lines, ``{label: y}``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, (x, y, err) in series.items():
        if err is not None:
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name)
        else:
            ax.plot(x, y, marker="o", label=name)
    for i, (name, y) in enumerate((hlines or {}).items()):
        ax.axhline(y, linestyle="--", color=f"C{len(series) + i}", linewidth=1, label=name)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
