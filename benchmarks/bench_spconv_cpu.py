"""spconv on CPU: spconv's own path against pri3d's patched path (``models/sparse_backend.py``).

spconv 2.3.8's CPU scatter-add races when torch runs more than one thread. The patch replaces it with
``Tensor.index_add_`` (and keeps spconv's own at one thread, where it is exact). In the same run, at the same thread
count, this prints for both paths:

* **exactness**: of ``--calls`` submanifold convolutions (3x3x3, 277 voxels), how many gave an output
  or an input gradient that differs from dense ``conv3d`` by more than 1e-5;
* **speed**: forward + backward of the geometric-prior branch's sparse UNet (``SparseResUNet``, the
  default widths) on a random chunk of ``--voxels`` voxels, median of ``--repeats``, and the ratio
  patched / spconv's own.

    python benchmarks/bench_spconv_cpu.py [--threads 2] [--calls 200] [--voxels 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

# spconv's own functions, saved before pri3d patches them
import spconv.pytorch.ops as ops  # noqa: I001
import torch
import torch.nn.functional as F

ORIGINAL = ops.SpconvOps.scatter_add_cpu

from pri3d.models.sparse_backend import import_spconv  # noqa: E402
from pri3d.models.sparse_unet import SparseResUNet  # noqa: E402

sp = import_spconv()
PATCHED = ops.SpconvOps.scatter_add_cpu


def use(scatter_add) -> None:
    ops.SpconvOps.scatter_add_cpu = staticmethod(scatter_add)


def chunk(n: int, extent: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = torch.unique(torch.randint(0, extent, (n, 3), generator=g), dim=0)
    return torch.cat([torch.zeros(len(c), 1, dtype=torch.int32), c.int()], 1)


def wrong_calls(calls: int) -> int:
    torch.manual_seed(0)
    coords = chunk(300, 12, 0)
    x, y, z = coords[:, 1].long(), coords[:, 2].long(), coords[:, 3].long()
    conv = sp.SubMConv3d(4, 5, 3, padding=1, bias=False, indice_key="t")
    w = conv.weight.detach().permute(0, 4, 1, 2, 3)
    wrong = 0
    for _ in range(calls):
        feats = torch.randn(len(coords), 4, requires_grad=True)
        out = conv(sp.SparseConvTensor(feats, coords, [12, 12, 12], 1)).features
        ref_feats = feats.detach().clone().requires_grad_(True)
        dense = torch.zeros(1, 4, 12, 12, 12)
        dense[0, :, x, y, z] = ref_feats.t()
        ref = F.conv3d(dense, w, padding=1)[0, :, x, y, z].t()
        g = torch.randn_like(ref)
        out.backward(g)
        ref.backward(g)
        wrong += not (torch.allclose(out, ref, atol=1e-5) and torch.allclose(feats.grad, ref_feats.grad, atol=1e-5))
    return wrong


def unet_seconds(voxels: int, repeats: int) -> float:
    torch.manual_seed(0)
    net = SparseResUNet(3, 96)
    extent = round((voxels * 8) ** (1 / 3))  # about one voxel in eight occupied
    coords = chunk(voxels, extent, 1)
    feats = torch.rand(len(coords), 3)
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        net(feats, coords, 1).square().mean().backward()
        if i:  # the first call is a warm-up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--voxels", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if torch.cuda.is_available():
        print("note: CUDA is available, so pri3d does not patch spconv; both rows run spconv's own path")
    print(f"torch threads {args.threads}; {args.calls} convolutions; SparseResUNet on {args.voxels} voxels")
    res = {}
    for name, path in (("spconv's own", ORIGINAL), ("pri3d patched", PATCHED)):
        use(path)
        res[name] = (wrong_calls(args.calls), unet_seconds(args.voxels, args.repeats))
        print(f"{name:14s}: wrong calls {res[name][0]}/{args.calls}; UNet forward+backward {res[name][1]:.3f} s")
    use(PATCHED)
    ratio = res["pri3d patched"][1] / res["spconv's own"][1]
    print(f"time ratio patched / spconv's own: {ratio:.2f}")


if __name__ == "__main__":
    main()
