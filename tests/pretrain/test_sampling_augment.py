import pytest
import torch

from pri3d.errors import ConfigError, DataError
from pri3d.models.imagenet import denormalize
from pri3d.pretrain.augment import ColorAugment
from pri3d.pretrain.data import StepBatchSampler, collate_pairs


def test_a_batch_that_does_not_split_over_the_processes_is_a_config_error():
    """Issue 23: under torchrun, a batch that does not split into processes x accumulation micro-batches
    raised a plain ValueError (a traceback instead of one line)."""
    with pytest.raises(ConfigError, match=r"batch_size 6 does not split into 4 process\(es\) x .* multiple of 4$"):
        StepBatchSampler(10, batch_size=6, world_size=4, rank=1)
    with pytest.raises(DataError, match="no training pairs"):
        StepBatchSampler(0, batch_size=4)


def test_step_sampler_is_a_pure_function_of_the_step():
    full = StepBatchSampler(10, batch_size=4, seed=3, steps=6)
    batches = list(full)
    assert len(batches) == 6 and all(len(b) == 4 for b in batches)
    resumed = list(StepBatchSampler(10, batch_size=4, seed=3, start_step=3, steps=6))
    assert resumed == batches[3:]
    # epochs: every pair once per 10 consecutive samples
    flat = [i for b in batches for i, _ in b]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    # seeds are unique per sample
    assert len({s for b in batches for _, s in b}) == 24


def test_step_sampler_splits_the_global_batch_over_ranks_and_accumulation():
    single = list(StepBatchSampler(50, batch_size=8, seed=0, steps=3))
    r0 = list(StepBatchSampler(50, batch_size=8, seed=0, steps=3, world_size=2, rank=0, accumulate=2))
    r1 = list(StepBatchSampler(50, batch_size=8, seed=0, steps=3, world_size=2, rank=1, accumulate=2))
    assert len(r0) == 6 and all(len(b) == 2 for b in r0)
    for s in range(3):  # micro 0: rank0, rank1; micro 1: rank0, rank1
        merged = r0[2 * s] + r1[2 * s] + r0[2 * s + 1] + r1[2 * s + 1]
        assert merged == single[s]


def test_augment_is_deterministic_given_the_generator_and_changes_colours():
    img = (torch.rand(3, 24, 32) * 255).to(torch.uint8)
    aug = ColorAugment()
    a1 = aug(img, torch.Generator().manual_seed(5))
    a2 = aug(img, torch.Generator().manual_seed(5))
    assert torch.equal(a1, a2)
    outs = [aug(img, torch.Generator().manual_seed(s)) for s in range(8)]
    assert any(not torch.allclose(o, outs[0]) for o in outs[1:])
    plain = ColorAugment(enabled=False)(img)
    assert torch.allclose(denormalize(plain), img.float() / 255, atol=1e-6)
    assert plain.shape == (3, 24, 32) and plain.dtype == torch.float32


def test_collate_offsets_pairs_images_and_voxels():
    def sample(nv, nm):
        return {
            "key": ("s", 0, 1),
            "image_a": torch.zeros(3, 8, 8),
            "image_b": torch.ones(3, 8, 8),
            "depth_a": torch.zeros(4, 4),
            "depth_b": torch.zeros(4, 4),
            "view": torch.tensor([[1, 2]] * nm),
            "vox_a": (torch.zeros(nv, 3, dtype=torch.int32), torch.ones(nv, 1), torch.tensor([[0, nv - 1]])),
            "vox_b": (torch.zeros(nv, 3, dtype=torch.int32), torch.ones(nv, 1), torch.tensor([[3, 0]])),
        }

    b = collate_pairs([sample(5, 2), sample(7, 1)])
    assert b["images"].shape == (4, 3, 8, 8) and b["images"][2:].eq(1).all()
    assert b["view"].tolist() == [[0, 1, 2], [0, 1, 2], [1, 1, 2]]
    assert b["vox_coords"].shape == (24, 4)
    assert b["vox_coords"][:, 0].tolist() == [0] * 5 + [1] * 7 + [2] * 5 + [3] * 7
    # geo rows: [image, pixel, global voxel row]; chunk order A0, A1, B0, B1
    assert b["geo"].tolist() == [[0, 0, 4], [1, 0, 11], [2, 3, 12], [3, 3, 17]]


def test_random_resized_crop_and_flip_only_change_the_intrinsics():
    """A ramp image cropped, resized and flipped: each output pixel shows the source pixel that the
    augmented intrinsics put on the same ray."""
    import cv2
    import numpy as np

    from pri3d.geometry.camera import scale_intrinsics
    from pri3d.pretrain.augment import crop_intrinsics, flip_intrinsics, sample_crop

    Hs, Ws, out = 120, 160, (48, 64)
    u, v = np.meshgrid(np.arange(Ws, dtype=np.float32), np.arange(Hs, dtype=np.float32))
    src = np.stack([u, v, np.zeros_like(u)], -1)  # value = source pixel coordinates
    K = torch.tensor([[140.0, 0, 79.5], [0, 140.0, 59.5], [0, 0, 1]], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    sizes = set()
    for _ in range(20):
        x0, y0, w, h = sample_crop(Hs, Ws, out, (0.3, 1.0), (0.75, 4 / 3), g)
        assert 0 <= x0 and x0 + w <= Ws and 0 <= y0 and y0 + h <= Hs and w * h >= 0.29 * Hs * Ws
        sizes.add((w, h))
        img = cv2.resize(src[y0 : y0 + h, x0 : x0 + w], (out[1], out[0]), interpolation=cv2.INTER_LINEAR)
        Ka = scale_intrinsics(crop_intrinsics(K, x0, y0), out[1] / w, out[0] / h)
        img, Ka = img[:, ::-1], flip_intrinsics(Ka, out[1])
        uu, vv = np.meshgrid(np.arange(out[1]), np.arange(out[0]))
        # the ray of output pixel (uu, vv) through the augmented K, projected by the source K
        x = (uu - float(Ka[0, 2])) / float(Ka[0, 0])
        y = (vv - float(Ka[1, 2])) / float(Ka[1, 1])
        us, vs = x * float(K[0, 0]) + float(K[0, 2]), y * float(K[1, 1]) + float(K[1, 2])
        inner = (us > 1) & (us < Ws - 2) & (vs > 1) & (vs < Hs - 2)
        assert np.abs(img[..., 0] - us)[inner].max() < 0.01 and np.abs(img[..., 1] - vs)[inner].max() < 0.01
    assert len(sizes) > 5  # crops vary
    # a crop that cannot keep the aspect ratio inside the image falls back to the largest centred one
    assert sample_crop(10, 100, (48, 64), (1.0, 1.0), (1.0, 1.0), g) == (43, 0, 13, 10)
