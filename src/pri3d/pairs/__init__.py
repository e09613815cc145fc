"""Pair stage: mining overlapping frame pairs and voxel geometry from RGB-D scans (``pri3d prepare``,
:mod:`pri3d.pairs.mine`, with the output folder's bookkeeping in :mod:`pri3d.pairs.output`) and reading
the prepared directory back (:mod:`pri3d.pairs.store`). The formulas (overlap, voxelization, depth
fusion, frustum boxes) are in :mod:`pri3d.geometry`; ``pairs/`` decides which frames, which pairs and
what is written.

It sits between the data readers and pre-training: besides the shared helpers (errors, atomic file
writes) it may import only :mod:`pri3d.geometry` and :mod:`pri3d.data`; :mod:`pri3d.pretrain`
imports it, nothing below it does.
"""
