"""Pure geometry functions (cameras, training correspondences, pair overlap, voxels, relative pose). See each module's
docstring for shapes. Imports nothing from pri3d outside this package.

The names below load their module on first use (PEP 562), so that importing one torch-free module of the
package (:mod:`pri3d.geometry.rays`, used by the synthetic renderer) does not import torch.
"""

from __future__ import annotations

import importlib

_HOME = {
    "backproject_depth": "camera",
    "color_to_depth_pixels": "camera",
    "depth_to_color_pixels": "camera",
    "invert_pose": "camera",
    "pixel_grid": "camera",
    "pose_is_valid": "camera",
    "project_points": "camera",
    "scale_intrinsics": "camera",
    "transform_points": "camera",
    "pixel_rays": "rays",
    "resample_depth": "correspondences",
    "view_correspondences": "correspondences",
    "overlap_fast": "overlap",
    "overlap_reference": "overlap",
    "estimate_relative_pose": "pose",
    "pose_auc": "pose",
    "pose_errors": "pose",
    "relative_pose": "pose",
    "relative_rotation_deg": "pose",
    "crop_voxels": "voxels",
    "frustum_aabb": "voxels",
    "pixel_voxel_correspondences": "voxels",
    "sample_mesh_surface": "voxels",
    "voxel_keys": "voxels",
    "voxel_keys_to_coords": "voxels",
    "voxelize_points": "voxels",
}

__all__ = list(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_HOME))
