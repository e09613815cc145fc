"""Typed dataclass configs, YAML presets and ``key=value`` overrides.

A preset is a YAML file. It is found by name in ``pri3d/presets/<group>/<name>.yaml`` (shipped with
the package) or given as a path. A preset may start from another with ``base: <name>``; keys are
merged recursively. Overrides use dotted keys and YAML values: ``optim.lr=0.05 model.arch=resnet50``.

:func:`build` turns the merged dict into the dataclass tree, rejecting unknown keys with the list of
valid ones, so a typo never silently does nothing. :func:`to_dict` gives back a plain dict for saving
the resolved config next to outputs and inside checkpoints. :func:`resolve` is the one builder of a
config from a preset, overrides and the values a caller decides; every command, loop and experiment cell
builds through it.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
import warnings
from pathlib import Path

import yaml

from pri3d.errors import ConfigError

__all__ = [
    "load_preset",
    "apply_overrides",
    "set_dotted",
    "build",
    "build_saved",
    "saved_as_current",
    "to_dict",
    "flatten",
    "resolve",
    "preset_names",
    "yaml_load",
    "read_yaml_mapping",
]

PRESETS_DIR = Path(__file__).parent / "presets"


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load`` with two fixes for configs: ``1e-3`` and ``1e30`` are numbers (YAML 1.1 wants
    ``1.0e-3`` and reads ``1e-3`` as a string), and a key given twice in one mapping is an error."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def yaml_load(text: str):
    """Parse config YAML (see :class:`_Loader`); raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def read_yaml_mapping(path) -> dict:
    """A config file's YAML mapping; empty, non-mapping, non-UTF-8 or invalid YAML (a duplicate key
    included) is a :class:`ConfigError` naming the file."""
    p = Path(path)
    try:
        d = yaml_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not a UTF-8 text file (byte {e.start}: {e.reason}); a config is YAML text") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML: {' '.join(str(e).split())}") from e
    if d is None:
        raise ConfigError(f"{p}: empty config file (a config is a YAML mapping of settings)")
    if not isinstance(d, dict):
        raise ConfigError(f"{p}: a config must be a YAML mapping of settings, got a {type(d).__name__}")
    return d


def preset_names(group: str) -> list[str]:
    d = PRESETS_DIR / group
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_preset(name_or_path: str | Path, group: str, *, cls=None, _seen: tuple = ()) -> dict:
    """Load a preset by name (``pri3d/presets/<group>/<name>.yaml``) or path, following ``base:``. With the
    config class ``cls``, each file's old key names (``ALIASES``) become today's before it is merged over its
    base, so an old name in one file and the new one in its base are one setting (the later file's)."""
    p = Path(name_or_path)
    if not p.suffix:
        p = PRESETS_DIR / group / f"{name_or_path}.yaml"
    if not p.is_file():
        raise ConfigError(
            f"config {name_or_path!r} not found (not a file, and not one of the {group} presets: "
            f"{', '.join(preset_names(group)) or 'none'})"
        )
    if str(p.resolve()) in _seen:
        raise ConfigError(f"{p}: circular 'base:' chain")
    d = read_yaml_mapping(p)
    base = d.pop("base", None)
    if cls is not None:
        d = _current_names(cls, d)
    if base is not None:
        base_ref = base if not str(base).endswith(".yaml") else str((p.parent / base).resolve())
        d = _merge(load_preset(base_ref, group, cls=cls, _seen=_seen + (str(p.resolve()),)), d)
    return d


def apply_overrides(d: dict, overrides: list[str], cls=None) -> dict:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML: ``1``, ``0.1``, ``true``, ``[1,2]``). With the
    config class ``cls``, an old key name (``ALIASES``) is today's before it is set, so it replaces the
    setting whichever name the preset gave it."""
    d = _copy(d)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        key = key.strip() if cls is None else _current_key(cls, key.strip())
        set_dotted(d, key, value, f"override {item!r}")
    return d


def set_dotted(d: dict, key: str, value, where: str = "") -> None:
    """``d["a"]["b"]["c"] = value`` for ``key="a.b.c"``, creating sections on the way (in place)."""
    *sections, last = key.split(".")
    for part in sections:
        d = d.setdefault(part, {})
        if not isinstance(d, dict):
            raise ConfigError(f"{where or key}: {part!r} is not a section")
    d[last] = value


def _copy(d):
    if isinstance(d, dict):
        return {k: _copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_copy(v) for v in d]
    return d


def _coerce(tp, value, where: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a section (mapping), got {value!r}")
        return build(tp, value, where + ".")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else typing.Any
        items = [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is typing.Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def _renamed(cls, d: dict, where: str, upgrade: bool = True) -> dict:
    """Old key names (``cls.ALIASES``: old -> new) and old value forms (``cls.upgrade_legacy``, when
    ``upgrade``) mapped to the current ones, with one ``FutureWarning`` per old key, so configs written
    before a rename load. ``cls.ALIAS_NOTES`` (old -> text) adds to an old key's warning what a reader must
    know. Both names in one mapping is an error."""
    aliases = getattr(cls, "ALIASES", {})
    if any(k in aliases for k in d):
        d = dict(d)
        for old, new in aliases.items():
            if old not in d:
                continue
            if new in d:
                raise ConfigError(
                    f"{where}{old} and {where}{new} are the same setting ({old} is its old name); keep {new}"
                )
            _warn_old_name(cls, where, old)
            d[new] = d.pop(old)
    fix = getattr(cls, "upgrade_legacy", None)
    if upgrade and callable(fix):
        d = fix(dict(d), where)
    return d


def _warn_old_name(cls, where: str, old: str) -> None:
    note = getattr(cls, "ALIAS_NOTES", {}).get(old)
    new = cls.ALIASES[old]
    msg = f"config key {where}{old} is deprecated; use {where}{new}{f' ({note})' if note else ''}"
    warnings.warn(msg, FutureWarning, stacklevel=5)


def _current_names(cls, d, where: str = ""):
    """One layer of settings of ``cls`` (a preset file) under today's key names, in every section."""
    if not (dataclasses.is_dataclass(cls) and isinstance(d, dict)):
        return d
    d = _renamed(cls, d, where, upgrade=False)
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    return {k: _current_names(hints[k], v, f"{where}{k}.") if k in fields else v for k, v in d.items()}


def _current_key(cls, key: str) -> str:
    """A dotted key of ``cls`` under today's names (``train.iters`` -> ``train.steps``, with a warning)."""
    parts: list[str] = []
    for part in key.split("."):
        if dataclasses.is_dataclass(cls) and part in getattr(cls, "ALIASES", {}):
            _warn_old_name(cls, "".join(f"{p}." for p in parts), part)
            part = cls.ALIASES[part]
        parts.append(part)
        fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
        cls = typing.get_type_hints(cls)[part] if part in fields else None
    return ".".join(parts)


def build(cls, d: dict, where: str = ""):
    """Build dataclass ``cls`` from a dict, recursively; unknown keys are an error. Deprecated key names
    (a dataclass's ``ALIASES``) still load, with a warning."""
    d = _renamed(cls, d, where)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(fields)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(sorted(where + k for k in unknown))}; "
            f"valid keys{' under ' + where.rstrip('.') if where else ''}: {', '.join(fields)}"
        )
    kwargs = {}
    for name, value in d.items():
        kwargs[name] = _coerce(hints[name], value, where + name)
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if callable(check):
        check()
    return obj


def build_saved(cls, d: dict):
    """Build ``cls`` from a config pri3d saved itself (in a checkpoint): like :func:`build`, but without the
    deprecation warnings for the old key names it may hold (nobody can edit a checkpoint)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return build(cls, d)


def saved_as_current(cls, d: dict) -> dict:
    """A saved config dict under today's key names and defaults, for comparing it with the resuming run's
    (``d`` itself when it no longer builds)."""
    try:
        return to_dict(build_saved(cls, d))
    except ConfigError:
        return d


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resolve(
    cls,
    preset: str | Path,
    overrides: list[str] | None = None,
    *,
    values: dict | None = None,
    fixed: dict | None = None,
):
    """The one config builder: the CLI, both training loops and the experiment's cells build their configs
    here, so a setting reads the same wherever it is given.

    In order: the preset ``preset`` (a name in ``pri3d/presets/<cls.PRESET_GROUP>/`` or a YAML path;
    ``base:`` chains followed), the ``key=value`` ``overrides`` (values parsed as YAML), then ``values``
    (dotted key -> typed value, set as the last overrides would be: the settings a caller decides, such as
    a command's options or an experiment cell's seed), validated into ``cls``. ``fixed`` (dotted key ->
    value) is set like ``values``, but the preset and overrides may only repeat it: a different value there
    is a :class:`ConfigError` (``pri3d finetune semseg`` refuses a detection preset). Old key names
    (``ALIASES``) are today's in each layer before the next is merged over it, with one warning each, so
    ``train.eval_every=2`` over a preset that says ``eval_every_epochs: 5`` sets that one setting."""
    d = apply_overrides(load_preset(preset, cls.PRESET_GROUP, cls=cls), overrides or [], cls)
    for dotted, value in (fixed or {}).items():
        found = _get_dotted(d, dotted)
        if found is not None and found != value:
            raise ConfigError(f"config {str(preset)!r} is a {found} preset ({dotted}: {found}), not {value}")
    for dotted, value in {**(values or {}), **(fixed or {})}.items():
        set_dotted(d, _current_key(cls, dotted), value)
    return build(cls, d)


def _get_dotted(d: dict, key: str):
    """``d["a"]["b"]`` for ``key="a.b"``; None when a part is missing."""
    for part in key.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d
