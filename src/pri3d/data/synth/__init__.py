"""The embedded default dataset: procedural indoor RGB-D scenes (``pri3d synth``).

Rooms with doors, windows and furniture made of boxes and cylinders, procedural textures, several
lights with specular highlights, handheld camera walks, and a depth sensor model (distance-dependent
noise, holes, range cut-off, mm quantisation), ray cast on the CPU with numpy and written in
ScanNet's exported layout (read by :mod:`pri3d.data.formats.scannet`).

Entry point: :func:`generate`. See :mod:`pri3d.data.synth.writer` for the output layout.
This package never imports torch in the rendering path (workers stay light).
"""

from pri3d.data.synth.classes import CLASSES, SCANNET20_IDS
from pri3d.data.synth.writer import GENERATOR, VERSION, generate, parse_resolution, split_scene_ids

__all__ = ["generate", "parse_resolution", "split_scene_ids", "CLASSES", "SCANNET20_IDS", "GENERATOR", "VERSION"]
