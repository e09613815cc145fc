"""Pure geometry functions (cameras, matching, voxels). See each module's docstring for shapes."""

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
from pri3d.geometry.matching import resample_depth, view_correspondences
from pri3d.geometry.voxels import (
    crop_voxels,
    frustum_aabb,
    pixel_voxel_correspondences,
    sample_mesh_surface,
    voxelize_points,
)

__all__ = [
    "backproject_depth",
    "color_to_depth_pixels",
    "crop_voxels",
    "frustum_aabb",
    "pixel_voxel_correspondences",
    "resample_depth",
    "sample_mesh_surface",
    "view_correspondences",
    "voxelize_points",
    "depth_to_color_pixels",
    "invert_pose",
    "pixel_grid",
    "pose_is_valid",
    "project_points",
    "scale_intrinsics",
    "transform_points",
]
