"""How restored files are named: ``<name>.restored.<ext>`` unless told otherwise.

Pure functions (no file system access), shared by ``resonate process`` with
an output folder and usable by the gateway, which names its outputs the same way.
"""
from __future__ import annotations

import re
from pathlib import PurePath

from engine.errors import SettingsError

#: placeholders: ``{name}`` the input's file name without its extension,
#: ``{ext}`` the export format's extension (wav, flac, mp3, ogg, opus)
DEFAULT_NAME_TEMPLATE = "{name}.restored.{ext}"

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def restored_name(input_name: str, fmt: str, template: str = DEFAULT_NAME_TEMPLATE) -> str:
    """The output file name for ``input_name`` written as ``fmt``, from ``template``.

    ``restored_name("gig.m4a", "wav")`` is ``"gig.restored.wav"``.  Raises
    :class:`SettingsError` for an unknown placeholder, a template that names a
    folder (``/``), or one that comes out empty.
    """
    name = PurePath(input_name).stem or "output"
    values = {"name": name, "ext": fmt}

    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key not in values:
            raise SettingsError(f"unknown placeholder {{{key}}} in the name template {template!r}: "
                                "use {name} and {ext}")
        return values[key]

    out = _PLACEHOLDER.sub(sub, template)
    if "/" in out or "\\" in out or out in ("", ".", ".."):
        raise SettingsError(f"the name template {template!r} must give a plain file name, got {out!r}")
    return out
