"""The registry of pre-training modes (pri3d.pretrain.modes)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pri3d.config import resolve
from pri3d.errors import ConfigError
from pri3d.pretrain.config import PretrainConfig
from pri3d.pretrain.modes import MODES, ModeSpec, register_mode


def test_builtin_modes_in_table_order_and_which_need_spconv():
    assert list(MODES) == ["trivial", "mocov2", "view", "geo", "view+geo"]
    assert {m for m, s in MODES.items() if s.uses_3d} == {"geo", "view+geo"}
    assert all(isinstance(s, ModeSpec) and s.description for s in MODES.values())


def test_register_mode_rejects_a_taken_name():
    with pytest.raises(ValueError, match="already registered"):
        register_mode("view", MODES["view"])
    assert MODES["view"] is MODES["view"]  # unchanged


def test_the_config_accepts_exactly_the_registered_modes():
    for mode in MODES:
        assert resolve(PretrainConfig, "cpu-tiny", [f"mode={mode}"]).mode == mode
    with pytest.raises(ConfigError, match="mode must be one of trivial, mocov2, view, geo, view\\+geo"):
        resolve(PretrainConfig, "cpu-tiny", ["mode=simclr"])


def test_listing_the_modes_imports_no_method_and_no_torch():
    code = (
        "import sys; import pri3d.pretrain.modes as m; "
        "assert len(m.MODES) == 5; "
        "bad = [k for k in sys.modules if k == 'torch' or k.startswith(('pri3d.pretrain.method', "
        "'pri3d.pretrain.mocov2', 'pri3d.pretrain.data'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_builders_build_their_modules_methods():
    from pri3d.pretrain.method import Pri3D
    from pri3d.pretrain.mocov2 import MoCoV2

    for mode, view in (("trivial", True), ("view", True)):
        cfg = resolve(PretrainConfig, "cpu-tiny", [f"mode={mode}"])
        method = MODES[mode].build_method(cfg)
        assert isinstance(method, Pri3D) and method.use_view is view and not method.use_geo
    cfg = resolve(PretrainConfig, "cpu-tiny", ["mode=mocov2", "moco.queue_size=8"])
    assert isinstance(MODES["mocov2"].build_method(cfg), MoCoV2)
