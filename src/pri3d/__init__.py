"""pri3d: pre-train 2D image backbones with 3D priors from RGB-D scans (Pri3D, ICCV 2021)."""

__version__ = "0.1.0"
