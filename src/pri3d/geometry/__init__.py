"""Pure geometry functions (cameras, training correspondences, pair overlap, voxels, relative pose). See each module's
docstring for shapes. Imports nothing from pri3d outside this package."""

from pri3d.geometry.camera import (
    backproject_depth,
    color_to_depth_pixels,
    depth_to_color_pixels,
    invert_pose,
    pixel_grid,
    pose_is_valid,
    project_points,
    scale_intrinsics,
    transform_points,
)
from pri3d.geometry.correspondences import resample_depth, view_correspondences
from pri3d.geometry.overlap import overlap_fast, overlap_reference
from pri3d.geometry.pose import (
    estimate_relative_pose,
    pose_auc,
    pose_errors,
    relative_pose,
    relative_rotation_deg,
)
from pri3d.geometry.voxels import (
    crop_voxels,
    frustum_aabb,
    pixel_voxel_correspondences,
    sample_mesh_surface,
    voxel_keys,
    voxel_keys_to_coords,
    voxelize_points,
)

__all__ = [
    "backproject_depth",
    "color_to_depth_pixels",
    "crop_voxels",
    "frustum_aabb",
    "overlap_fast",
    "overlap_reference",
    "pixel_voxel_correspondences",
    "resample_depth",
    "sample_mesh_surface",
    "view_correspondences",
    "voxel_keys",
    "voxel_keys_to_coords",
    "voxelize_points",
    "depth_to_color_pixels",
    "invert_pose",
    "pixel_grid",
    "pose_is_valid",
    "project_points",
    "scale_intrinsics",
    "transform_points",
    "estimate_relative_pose",
    "pose_auc",
    "pose_errors",
    "relative_pose",
    "relative_rotation_deg",
]
