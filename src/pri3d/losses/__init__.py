"""Losses, one small module each: PointInfoNCE (:mod:`.point_info_nce`), depth (:mod:`.depth`), MoCo's
InfoNCE against a queue of keys (:mod:`.moco`)."""

from pri3d.losses.point_info_nce import NCEResult, PointInfoNCE, point_info_nce

__all__ = ["NCEResult", "PointInfoNCE", "point_info_nce"]
