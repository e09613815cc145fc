import torch

from pri3d.pretrain.augment import ColorAugment, denormalize
from pri3d.pretrain.data import StepBatchSampler, collate_pairs


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
            "key": ("s", 0, 1), "image_a": torch.zeros(3, 8, 8), "image_b": torch.ones(3, 8, 8),
            "depth_a": torch.zeros(4, 4), "depth_b": torch.zeros(4, 4),
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
