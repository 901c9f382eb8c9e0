"""Mastering targets of a job: one typed config read by the preview and the final master.

target_lufs: integrated loudness of the final file, LUFS (-40..-5; -14 suits
    streaming services).  The streamed preview rides towards it too.
ceiling_dbtp: true-peak ceiling, dBTP (-12..0), measured 4x oversampled.
limiter_lookahead_ms: look-ahead of the true-peak limiter, ms (2..50).
limiter_release_ms: release time of the limiter, ms (1..2000).

:data:`TARGET_LUFS` and :data:`CEILING_DBTP` are the one valid range of each
level: :class:`~.preview.PreviewMaster` and :class:`~.final.FinalMasterConfig`
check their arguments with them too.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ..config_fields import Number, build, check_fields, setting

TARGET_LUFS = Number(-40.0, -5.0)
CEILING_DBTP = Number(-12.0, 0.0)


@dataclass(frozen=True)
class MasterConfig:
    """Mastering targets (see the module docstring for units and ranges)."""

    target_lufs: float = setting(TARGET_LUFS, -14.0)
    ceiling_dbtp: float = setting(CEILING_DBTP, -1.0)
    limiter_lookahead_ms: float = setting(Number(2.0, 50.0), 5.0)
    limiter_release_ms: float = setting(Number(1.0, 2000.0), 80.0)

    def __post_init__(self) -> None:
        check_fields(self, "master")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, base: "MasterConfig | None" = None) -> "MasterConfig":
        """``base`` (default: the defaults above) updated by a (possibly partial) dict."""
        return build(cls, data, "master", base)

    def to_dict(self) -> dict:
        return asdict(self)
