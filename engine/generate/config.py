"""The ``generate`` settings section: JASCO generation from the recording's profile (module 11).

A typed section of the job's settings (``Settings.generate``), checked field by
field by :mod:`engine.config_fields` like every other section.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ..config_fields import Choice, Number, Text, build, check_fields, setting
from ..errors import SettingsError

MODES = ("restore", "generate", "both")
DEVICES = ("auto", "cpu", "cuda", "mps")
DEFAULT_MODEL = "facebook/jasco-chords-drums-melody-400M"
#: shown before generating (web page, Streamlit, CLI): the seed's warning
WARNING = ("AI generation creates NEW music conditioned on your recording's chords, melody, drums, key and tempo. "
           "It is not a restoration of the performance and is labelled AI-generated everywhere. "
           "JASCO weights are CC-BY-NC 4.0: non-commercial use only.")


@dataclass(frozen=True)
class GenerateConfig:
    """JASCO generation (off unless ``mode`` is ``generate`` or ``both``).

    mode: ``restore`` (no generation), ``generate`` (the output is JASCO's,
        labelled AI-generated) or ``both`` (restored and generated side by
        side, blended by ``blend``: "Blend (Restored <-> Generated)").
    model: a Hugging Face model id (``facebook/jasco-chords-drums-melody-400M``,
        ``facebook/jasco-chords-drums-400M``, ``-1B``) or a local folder with
        ``state_dict.bin`` and ``compression_state_dict.bin``, loaded by
        ``JASCO.get_pretrained``.
    chords_mapping: AudioCraft's ``chord_to_index_mapping.pkl`` (its ``assets/``);
        None: ``chord_to_index_mapping.pkl`` inside ``model`` when it is a folder.
    model_dir: a Hugging Face cache folder (an ``HF_HOME``) for ``model`` and
        its conditioners (``t5-base``, ``facebook/encodec_32khz``), read offline,
        and in its ``torch/`` sub-folder (a ``TORCH_HOME``) the drums conditioner's
        ``htdemucs``; None: the default caches.
    text: the user's hints (genre, instruments); the detected key and tempo are appended.
    cfg_coef_all, cfg_coef_txt: JASCO's classifier-free guidance coefficients.
    steps: Euler steps of the flow-matching solver (cost is linear in it).
    window_s: generated window (JASCO makes 10 s); crossfade_s: overlap of two
        windows, joined by an equal-power crossfade.
    blend: in ``both``, share of the generated audio in the mix output (0 = restored only).
    seed: window ``k`` is generated with torch seeded from ``(seed, k)``.
    device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
    """

    mode: str = setting(Choice(MODES), "restore")
    model: str = setting(Text(), DEFAULT_MODEL)
    chords_mapping: str | None = setting(Text(optional=True, none_means="chord_to_index_mapping.pkl in the model folder"),
                                         None)
    model_dir: str | None = setting(Text(optional=True, none_means="the default Hugging Face cache"), None)
    text: str | None = setting(Text(optional=True, none_means="no hints: key and tempo only"), None)
    cfg_coef_all: float = setting(Number(0.0, 20.0), 5.0)
    cfg_coef_txt: float = setting(Number(0.0, 20.0), 0.0)
    steps: int = setting(Number(1, 200, integer=True), 10)
    window_s: float = setting(Number(1.0, 10.0), 10.0)
    crossfade_s: float = setting(Number(0.05, 4.0), 1.0)
    blend: float = setting(Number(0.0, 1.0), 0.5)
    seed: int = setting(Number(0, 2 ** 31 - 1, integer=True), 0)
    device: str = setting(Choice(DEVICES), "auto")

    def __post_init__(self) -> None:
        check_fields(self, "generate")
        if self.crossfade_s * 2 > self.window_s:
            raise SettingsError("generate.crossfade_s must be at most half of generate.window_s")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, base: "GenerateConfig | None" = None) -> "GenerateConfig":
        return build(cls, data, "generate", base)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def enabled(self) -> bool:
        return self.mode != "restore"

    @property
    def stride_s(self) -> float:
        return self.window_s - self.crossfade_s
