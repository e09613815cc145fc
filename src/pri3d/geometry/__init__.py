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

__all__ = [
    "backproject_depth",
    "color_to_depth_pixels",
    "depth_to_color_pixels",
    "invert_pose",
    "pixel_grid",
    "pose_is_valid",
    "project_points",
    "scale_intrinsics",
    "transform_points",
]
