"""Furniture and fixtures as templates: each builder returns the boxes and vertical cylinders of one
object in its local frame (x along its width, +y its front, z up, footprint centred on the origin), with
sizes drawn from class-typical ranges and materials from a sampler of :mod:`~pri3d.data.synth.materials`.

Floor objects stand on ``z = 0``. The wall-mounted ones (door, window, curtain, picture) start at local
``y = 0``, the wall, and take absolute heights; the shower curtain hangs from a ceiling rail. Placing a
template in a room is :mod:`~pri3d.data.synth.layout`'s job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pri3d.data.synth.classes import NAME_TO_ID
from pri3d.data.synth.materials import ClassMaterials
from pri3d.data.synth.spec import uniform
from pri3d.data.synth.textures import Material


class Parts:
    """Collects primitives of one object in its local frame (x width, +y front, z up)."""

    def __init__(self):
        self.items: list[tuple] = []

    def box(self, x0, x1, y0, y1, z0, z1, mat: Material, yaw: float = 0.0):
        c = ((x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2)
        h = (abs(x1 - x0) / 2, abs(y1 - y0) / 2, abs(z1 - z0) / 2)
        self.items.append(("box", c, h, yaw, mat))

    def cyl(self, cx, cy, r, z0, z1, mat: Material):
        self.items.append(("cyl", (cx, cy, (z0 + z1) / 2), (r, r, (z1 - z0) / 2), 0.0, mat))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        for kind, c, h, yaw, _ in self.items:
            c, h = np.asarray(c, float), np.asarray(h, float)
            if kind == "box" and yaw:
                ca, sa = abs(math.cos(yaw)), abs(math.sin(yaw))
                h = np.array([ca * h[0] + sa * h[1], sa * h[0] + ca * h[1], h[2]])
            lo, hi = np.minimum(lo, c - h), np.maximum(hi, c + h)
        return lo, hi


@dataclass
class Template:
    label: int
    parts: Parts
    kind: str = ""


def build_cabinet(rng, M: ClassMaterials, tall=None) -> Template:
    P = Parts()
    w, d = uniform(rng, 0.6, 1.5), uniform(rng, 0.4, 0.6)
    tall = rng.random() < 0.5 if tall is None else tall
    h = uniform(rng, 1.6, 2.1) if tall else uniform(rng, 0.7, 0.9)
    body = M.surface()
    front = body if rng.random() < 0.5 else M.surface()
    handle = M.metal()
    P.box(-w / 2, w / 2, -d / 2, d / 2 - 0.02, 0, h, body)
    n = 1 if w < 0.8 else 2
    dw = w / n
    for i in range(n):
        x0, x1 = -w / 2 + i * dw + 0.004, -w / 2 + (i + 1) * dw - 0.004
        P.box(x0, x1, d / 2 - 0.02, d / 2, 0.05, h - 0.03, front)
        hx = x1 - 0.05 if i == 0 else x0 + 0.05
        hz = min(h - 0.2, 1.05) if tall else h - 0.15
        P.box(hx - 0.008, hx + 0.008, d / 2, d / 2 + 0.025, hz - 0.07, hz + 0.07, handle)
    return Template(NAME_TO_ID["cabinet"], P, "tall" if tall else "low")


def build_bed(rng, M) -> Template:
    P = Parts()
    W, L = uniform(rng, 0.95, 1.8), uniform(rng, 1.95, 2.1)
    frame = M.surface(axis=0)
    P.box(-W / 2, W / 2, -L / 2 + 0.06, L / 2, 0, 0.3, frame)
    P.box(-W / 2, W / 2, -L / 2, -L / 2 + 0.06, 0, uniform(rng, 0.85, 1.15), frame)
    mt = 0.3 + uniform(rng, 0.17, 0.24)
    sheet = M.fabric()
    P.box(-W / 2 + 0.03, W / 2 - 0.03, -L / 2 + 0.08, L / 2 - 0.03, 0.3, mt, sheet)
    blanket = M.fabric()
    P.box(-W / 2 + 0.01, W / 2 - 0.01, -L / 2 + uniform(rng, 0.5, 0.8), L / 2 - 0.01, mt - 0.03, mt + 0.04, blanket)
    pillow = M.fabric() if rng.random() < 0.5 else sheet
    n = 1 if W < 1.3 else 2
    pw = (W - 0.1) / n
    for i in range(n):
        x0 = -W / 2 + 0.05 + i * pw
        P.box(x0 + 0.02, x0 + pw - 0.02, -L / 2 + 0.1, -L / 2 + 0.45, mt, mt + uniform(rng, 0.1, 0.15), pillow)
    return Template(NAME_TO_ID["bed"], P)


def build_chair(rng, M) -> Template:
    P = Parts()
    w, d = uniform(rng, 0.42, 0.5), uniform(rng, 0.42, 0.5)
    sh, st = uniform(rng, 0.43, 0.48), uniform(rng, 0.03, 0.06)
    bh = uniform(rng, 0.35, 0.5)
    if rng.random() < 0.3:  # office chair: pedestal on a round base
        metal, seat = M.metal(), M.fabric()
        P.cyl(0, 0, uniform(rng, 0.26, 0.3), 0, 0.05, metal)
        P.cyl(0, 0, 0.03, 0.05, sh - st, metal)
        P.box(-w / 2, w / 2, -d / 2, d / 2, sh - st, sh, seat)
        P.box(-w / 2 + 0.02, w / 2 - 0.02, -d / 2 - 0.04, -d / 2, sh + 0.06, sh + bh, seat)
        return Template(NAME_TO_ID["chair"], P, "office")
    frame = M.surface(axis=2)
    seat = frame if rng.random() < 0.5 else M.fabric()
    lt = uniform(rng, 0.03, 0.045)
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (w / 2 - lt / 2), sy * (d / 2 - lt / 2)
            P.box(x - lt / 2, x + lt / 2, y - lt / 2, y + lt / 2, 0, sh - st, frame)
    P.box(-w / 2, w / 2, -d / 2, d / 2, sh - st, sh, seat)
    P.box(-w / 2, w / 2, -d / 2, -d / 2 + 0.03, sh, sh + bh, frame)
    return Template(NAME_TO_ID["chair"], P, "dining")


def build_sofa(rng, M) -> Template:
    P = Parts()
    W, D = uniform(rng, 1.5, 2.4), uniform(rng, 0.8, 0.95)
    fab = M.fabric()
    cush = fab if rng.random() < 0.6 else M.fabric()
    arm, back = uniform(rng, 0.12, 0.2), uniform(rng, 0.15, 0.22)
    P.box(-W / 2 + arm, W / 2 - arm, -D / 2 + back, D / 2, 0.0, 0.42, fab)
    P.box(-W / 2, W / 2, -D / 2, -D / 2 + back, 0, uniform(rng, 0.75, 0.9), fab)
    ah = uniform(rng, 0.55, 0.65)
    P.box(-W / 2, -W / 2 + arm, -D / 2 + back, D / 2, 0, ah, fab)
    P.box(W / 2 - arm, W / 2, -D / 2 + back, D / 2, 0, ah, fab)
    n = 2 if W < 1.9 else 3
    cw = (W - 2 * arm) / n
    for i in range(n):
        x0 = -W / 2 + arm + i * cw
        P.box(x0 + 0.01, x0 + cw - 0.01, -D / 2 + back + 0.01, D / 2 - 0.01, 0.42, 0.42 + uniform(rng, 0.1, 0.14), cush)
    return Template(NAME_TO_ID["sofa"], P)


def build_table(rng, M, coffee=False) -> Template:
    P = Parts()
    top, leg = M.surface(axis=0), None
    leg = top if rng.random() < 0.6 else M.metal()
    H = uniform(rng, 0.4, 0.5) if coffee else uniform(rng, 0.72, 0.77)
    tt = uniform(rng, 0.025, 0.05)
    if not coffee and rng.random() < 0.3:
        r = uniform(rng, 0.4, 0.6)
        P.cyl(0, 0, r, H - tt, H, top)
        P.cyl(0, 0, uniform(rng, 0.04, 0.07), 0.03, H - tt, leg)
        P.cyl(0, 0, uniform(rng, 0.22, 0.3), 0, 0.03, leg)
        return Template(NAME_TO_ID["table"], P, "round")
    W, D = (
        (uniform(rng, 0.8, 1.2), uniform(rng, 0.5, 0.7)) if coffee else (uniform(rng, 0.9, 1.8), uniform(rng, 0.7, 1.0))
    )
    P.box(-W / 2, W / 2, -D / 2, D / 2, H - tt, H, top)
    lt, inset = uniform(rng, 0.04, 0.07), uniform(rng, 0.02, 0.08)
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (W / 2 - inset - lt / 2), sy * (D / 2 - inset - lt / 2)
            P.box(x - lt / 2, x + lt / 2, y - lt / 2, y + lt / 2, 0, H - tt, leg)
    return Template(NAME_TO_ID["table"], P, "coffee" if coffee else "rect")


def build_desk(rng, M) -> Template:
    P = Parts()
    W, D, H = uniform(rng, 1.0, 1.6), uniform(rng, 0.55, 0.75), uniform(rng, 0.72, 0.76)
    mat = M.surface(axis=0)
    P.box(-W / 2, W / 2, -D / 2, D / 2, H - 0.03, H, mat)
    side = mat if rng.random() < 0.7 else M.paint()
    P.box(-W / 2, -W / 2 + 0.03, -D / 2, D / 2, 0, H - 0.03, side)
    if rng.random() < 0.6:  # drawer unit on the right
        dw = uniform(rng, 0.35, 0.45)
        P.box(W / 2 - dw, W / 2, -D / 2, D / 2 - 0.02, 0, H - 0.03, side)
        handle = M.metal()
        for k in range(3):
            z = (H - 0.03) * (k + 0.6) / 3
            P.box(W / 2 - dw / 2 - 0.05, W / 2 - dw / 2 + 0.05, D / 2 - 0.02, D / 2, z - 0.008, z + 0.008, handle)
    else:
        P.box(W / 2 - 0.03, W / 2, -D / 2, D / 2, 0, H - 0.03, side)
    return Template(NAME_TO_ID["desk"], P)


def build_bookshelf(rng, M) -> Template:
    P = Parts()
    W, D, H = uniform(rng, 0.6, 1.2), uniform(rng, 0.28, 0.38), uniform(rng, 1.2, 2.0)
    mat = M.surface(axis=0)
    t = 0.02
    P.box(-W / 2, -W / 2 + t, -D / 2, D / 2, 0, H, mat)
    P.box(W / 2 - t, W / 2, -D / 2, D / 2, 0, H, mat)
    P.box(-W / 2 + t, W / 2 - t, -D / 2, -D / 2 + 0.01, 0, H, mat)
    P.box(-W / 2 + t, W / 2 - t, -D / 2, D / 2, H - t, H, mat)
    P.box(-W / 2 + t, W / 2 - t, -D / 2 + 0.01, D / 2, 0, 0.06, mat)
    n_shelf = max(2, int(round((H - 0.08) / uniform(rng, 0.3, 0.38))))
    gap = (H - 0.06 - t) / n_shelf
    for i in range(n_shelf):
        zb = 0.06 + i * gap
        if i > 0:
            P.box(-W / 2 + t, W / 2 - t, -D / 2 + 0.01, D / 2, zb - t, zb, mat)
        x = -W / 2 + t + 0.01
        while x < W / 2 - t - 0.12 and rng.random() < 0.9:
            rw = min(uniform(rng, 0.15, 0.6), W / 2 - t - 0.01 - x)
            hgt = (gap - t) * uniform(rng, 0.75, 0.95)
            bd = uniform(rng, 0.15, D - 0.05)
            P.box(x, x + rw, -D / 2 + 0.01, -D / 2 + 0.01 + bd, zb, zb + hgt, M.books(hgt / 2))
            x += rw + uniform(rng, 0.01, 0.15)
    return Template(NAME_TO_ID["bookshelf"], P)


def build_counter(rng, M, width=None) -> Template:
    P = Parts()
    W = width if width is not None else uniform(rng, 1.2, 2.8)
    D, H = 0.6, uniform(rng, 0.88, 0.92)
    body, top, handle = M.surface(), M.stone(), M.metal()
    P.box(-W / 2, W / 2, -D / 2, D / 2 - 0.07, 0, 0.1, body)
    P.box(-W / 2, W / 2, -D / 2, D / 2 - 0.02, 0.1, H - 0.03, body)
    n = max(1, int(round(W / 0.5)))
    dw = W / n
    for i in range(n):
        x0, x1 = -W / 2 + i * dw + 0.003, -W / 2 + (i + 1) * dw - 0.003
        P.box(x0, x1, D / 2 - 0.02, D / 2, 0.12, H - 0.05, body)
        P.box(x0 + dw / 2 - 0.06, x0 + dw / 2 + 0.06, D / 2, D / 2 + 0.02, H - 0.12, H - 0.105, handle)
    P.box(-W / 2, W / 2, -D / 2, D / 2 + 0.02, H - 0.03, H, top)
    return Template(NAME_TO_ID["counter"], P)


def build_refrigerator(rng, M) -> Template:
    P = Parts()
    W, D, H = uniform(rng, 0.6, 0.8), uniform(rng, 0.62, 0.72), uniform(rng, 1.7, 1.9)
    mat = M.metal() if rng.random() < 0.5 else M.ceramic()
    handle = M.metal()
    P.box(-W / 2, W / 2, -D / 2, D / 2 - 0.03, 0, H, mat)
    split = H * uniform(rng, 0.6, 0.7)
    P.box(-W / 2 + 0.005, W / 2 - 0.005, D / 2 - 0.03, D / 2, 0.03, split - 0.005, mat)
    P.box(-W / 2 + 0.005, W / 2 - 0.005, D / 2 - 0.03, D / 2, split + 0.005, H - 0.01, mat)
    hx = W / 2 - 0.06
    P.box(hx - 0.01, hx + 0.01, D / 2, D / 2 + 0.04, split - 0.45, split - 0.1, handle)
    P.box(hx - 0.01, hx + 0.01, D / 2, D / 2 + 0.04, split + 0.1, split + 0.35, handle)
    return Template(NAME_TO_ID["refrigerator"], P)


def build_toilet(rng, M) -> Template:
    P = Parts()
    cer = M.ceramic()
    tw, td = uniform(rng, 0.38, 0.48), uniform(rng, 0.17, 0.22)
    r = uniform(rng, 0.18, 0.21)
    P.box(-tw / 2, tw / 2, 0, td, 0.4, uniform(rng, 0.74, 0.8), cer)
    P.box(-0.11, 0.11, 0.02, td + r, 0, 0.3, cer)
    cy = td + r * 0.95
    P.cyl(0, cy, r, 0.18, 0.39, cer)
    seat = cer if rng.random() < 0.7 else M.paint()
    P.cyl(0, cy, r + 0.01, 0.39, 0.42, seat)
    return Template(NAME_TO_ID["toilet"], P)


def _basin(P: Parts, W, D, z0, z1, cer, y0=None):
    """An open basin (four walls and a bottom) with its back at ``y0`` (default ``-D / 2``)."""
    y0 = -D / 2 if y0 is None else y0
    t = 0.03
    P.box(-W / 2, W / 2, y0, y0 + D, z0, z0 + 0.04, cer)
    P.box(-W / 2, W / 2, y0, y0 + t, z0, z1, cer)
    P.box(-W / 2, W / 2, y0 + D - t, y0 + D, z0, z1, cer)
    P.box(-W / 2, -W / 2 + t, y0 + t, y0 + D - t, z0, z1, cer)
    P.box(W / 2 - t, W / 2, y0 + t, y0 + D - t, z0, z1, cer)


def build_sink(rng, M, on_counter=False) -> Template:
    P = Parts()
    cer, metal = M.ceramic(), M.metal()
    W, D = uniform(rng, 0.42, 0.58), uniform(rng, 0.36, 0.46)
    if on_counter:  # a vessel sink standing on a counter top (local z = 0 is the counter top)
        _basin(P, W, D, 0.0, uniform(rng, 0.12, 0.16), cer, y0=-D / 2 + 0.02)
        P.cyl(0, -D / 2 + 0.0, 0.015, 0, 0.3, metal)
        P.box(-0.012, 0.012, -D / 2 + 0.0, -D / 2 + 0.14, 0.28, 0.3, metal)
        return Template(NAME_TO_ID["sink"], P, "vessel")
    top = uniform(rng, 0.82, 0.88)
    P.cyl(0, -D / 2 + 0.12, uniform(rng, 0.07, 0.1), 0, top - 0.16, cer)
    _basin(P, W, D, top - 0.16, top, cer)
    P.cyl(0, -D / 2 + 0.015, 0.015, top, top + 0.15, metal)
    return Template(NAME_TO_ID["sink"], P, "pedestal")


def build_bathtub(rng, M) -> Template:
    P = Parts()
    W, D, H = uniform(rng, 1.5, 1.75), uniform(rng, 0.7, 0.8), uniform(rng, 0.5, 0.58)
    cer = M.ceramic()
    P.box(-W / 2, W / 2, -D / 2, D / 2, 0, 0.1, cer)
    t = 0.07
    P.box(-W / 2, W / 2, -D / 2, -D / 2 + t, 0.1, H, cer)
    P.box(-W / 2, W / 2, D / 2 - t, D / 2, 0.1, H, cer)
    P.box(-W / 2, -W / 2 + t, -D / 2 + t, D / 2 - t, 0.1, H, cer)
    P.box(W / 2 - t, W / 2, -D / 2 + t, D / 2 - t, 0.1, H, cer)
    return Template(NAME_TO_ID["bathtub"], P)


def build_otherfurniture(rng, M, kind=None) -> Template:
    P = Parts()
    kind = kind or M.pick(["nightstand", "ottoman", "dresser", "basket"])
    if kind == "ottoman":
        P.cyl(0, 0, uniform(rng, 0.22, 0.35), 0, uniform(rng, 0.38, 0.46), M.fabric())
    elif kind == "basket":
        P.cyl(0, 0, uniform(rng, 0.16, 0.24), 0, uniform(rng, 0.4, 0.6), M.pick([M.fabric(), M.paint()]))
    else:
        w, d, h = (
            (uniform(rng, 0.38, 0.5), uniform(rng, 0.35, 0.45), uniform(rng, 0.5, 0.65))
            if kind == "nightstand"
            else (uniform(rng, 0.8, 1.4), uniform(rng, 0.45, 0.55), uniform(rng, 0.75, 1.1))
        )
        body, handle = M.surface(), M.metal()
        P.box(-w / 2, w / 2, -d / 2, d / 2 - 0.02, 0, h, body)
        n = 2 if kind == "nightstand" else 3
        for k in range(n):
            z0 = 0.06 + k * (h - 0.08) / n
            z1 = 0.06 + (k + 1) * (h - 0.08) / n - 0.006
            P.box(-w / 2 + 0.01, w / 2 - 0.01, d / 2 - 0.02, d / 2, z0, z1, body)
            zc = (z0 + z1) / 2
            P.box(-0.05, 0.05, d / 2, d / 2 + 0.02, zc - 0.008, zc + 0.008, handle)
    return Template(NAME_TO_ID["otherfurniture"], P, kind)


# Wall-mounted builders: local y from -hy (touching the wall) forward; absolute z.


def build_door(rng, M, w, h) -> Template:
    P = Parts()
    panel = M.paint(light=True) if rng.random() < 0.5 else M.wood(axis=2)
    trim = M.paint(light=True)
    tw = 0.06
    P.box(-w / 2 - tw, -w / 2, 0, 0.035, 0, h + tw, trim)
    P.box(w / 2, w / 2 + tw, 0, 0.035, 0, h + tw, trim)
    P.box(-w / 2, w / 2, 0, 0.035, h, h + tw, trim)
    P.box(-w / 2, w / 2, 0, 0.025, 0, h, panel)
    hx = w / 2 - 0.08
    P.box(hx - 0.1, hx + 0.01, 0.045, 0.065, 0.99, 1.01, M.metal())
    P.box(hx - 0.01, hx + 0.01, 0.025, 0.065, 0.98, 1.02, M.metal())
    return Template(NAME_TO_ID["door"], P)


def build_window(rng, M, w, z0, z1) -> Template:
    P = Parts()
    frame = M.paint(light=True) if rng.random() < 0.7 else M.wood()
    glass = M.glass()
    f = 0.06
    P.box(-w / 2, w / 2, 0, 0.01, z0, z1, glass)
    P.box(-w / 2, -w / 2 + f, 0, 0.05, z0, z1, frame)
    P.box(w / 2 - f, w / 2, 0, 0.05, z0, z1, frame)
    P.box(-w / 2 + f, w / 2 - f, 0, 0.05, z1 - f, z1, frame)
    P.box(-w / 2 + f, w / 2 - f, 0, 0.05, z0, z0 + f, frame)
    if w > 1.0:
        P.box(-0.02, 0.02, 0.01, 0.04, z0 + f, z1 - f, frame)
    P.box(-w / 2 - 0.05, w / 2 + 0.05, 0, 0.12, z0 - 0.03, z0, frame)
    return Template(NAME_TO_ID["window"], P)


def build_curtain(rng, M, w, z0, z1, mat) -> Template:
    P = Parts()
    r = uniform(rng, 0.025, 0.04)
    n = max(2, int(round(w / (1.6 * r))))
    xs = np.linspace(-w / 2 + r, w / 2 - r, n)
    off = 0.05  # folds hang this far from the wall, on a rail fixed to it
    for i, x in enumerate(xs):
        y = off + r + (0.015 if i % 2 else 0.0)
        P.cyl(float(x), y, r, z0, z1, mat)
    P.box(-w / 2, w / 2, 0.0, off + 2 * r + 0.015, z1, z1 + 0.02, M.pick([M.metal(), M.wood()]))
    return Template(NAME_TO_ID["curtain"], P)


def build_picture(rng, M, w, h, zc) -> Template:
    P = Parts()
    frame = M.pick([M.wood(), M.paint()])
    P.box(-w / 2, w / 2, 0, 0.02, zc - h / 2, zc + h / 2, frame)
    b = uniform(rng, 0.02, 0.06)
    P.box(-w / 2 + b, w / 2 - b, 0.02, 0.025, zc - h / 2 + b, zc + h / 2 - b, M.art())
    return Template(NAME_TO_ID["picture"], P)


def build_shower_curtain(rng, M, length, y, z0, z1, ceiling) -> Template:
    P = Parts()
    mat = M.pick([M.fabric(), M.art(), M.paint(light=True)])
    mat.ks = 0.15
    r = uniform(rng, 0.02, 0.03)
    cover = length * uniform(rng, 0.35, 1.0)
    n = max(2, int(round(cover / (1.6 * r))))
    xs = np.linspace(-length / 2 + r, -length / 2 + cover - r, n)
    for i, x in enumerate(xs):
        P.cyl(float(x), y + (0.012 if i % 2 else 0.0), r, z0, z1 - 0.03, mat)
    metal = M.metal()
    P.box(-length / 2, length / 2, y - 0.01, y + 0.01, z1 - 0.03, z1 - 0.01, metal)
    for x in (-length / 2 + 0.02, length / 2 - 0.02):  # hangers up to the ceiling
        P.box(x - 0.005, x + 0.005, y - 0.005, y + 0.005, z1 - 0.01, ceiling, metal)
    return Template(NAME_TO_ID["shower curtain"], P)
