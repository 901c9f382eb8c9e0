"""The presets: the YAML files in this folder are the one source of every preset.

``<name>.yaml`` holds the preset ``name`` with the nesting of the job
settings (:mod:`resonate_stream.settings`); the list of presets is the list of
files.  Values are read with YAML 1.2 scalars (:func:`load_yaml`): only
``true``/``false`` are booleans, so ``dereverb: off`` stays the text ``off``.
This module reads files only (no engine imports), so the CLI can list the
presets without loading the engine.
"""
from __future__ import annotations

import copy
import re
from functools import lru_cache
from importlib import resources

import yaml

from engine.errors import SettingsError

DEFAULT_PRESET = "balanced"


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans (``yes``/``no``/``on``/``off`` stay text)."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


def load_yaml(text: str):
    """``text`` parsed as YAML (safe; YAML 1.2 booleans).  Raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


def _folder():
    return resources.files(__name__)


@lru_cache(maxsize=None)
def preset_names() -> tuple[str, ...]:
    """Names of the shipped presets (the ``*.yaml`` files here), sorted."""
    return tuple(sorted(p.name[:-len(".yaml")] for p in _folder().iterdir() if p.name.endswith(".yaml")))


@lru_cache(maxsize=None)
def _read(name: str) -> dict:
    data = load_yaml(_folder().joinpath(f"{name}.yaml").read_text())
    if not isinstance(data, dict):
        raise SettingsError(f"preset file {name}.yaml must hold a mapping of sections")
    return data


def read_preset(name: str) -> dict:
    """The preset ``name`` as a nested dict (a fresh copy)."""
    if name not in preset_names():
        raise SettingsError(f"preset must be one of {', '.join(preset_names())}, got {name!r}")
    return copy.deepcopy(_read(name))
