"""Limits on the audio Resonate accepts, checked where audio enters."""
from __future__ import annotations

from engine.errors import UnsupportedAudioError

MIN_SAMPLE_RATE = 8000  # Hz
MAX_SAMPLE_RATE = 384000  # Hz
MAX_CHANNELS = 32


def validate_stream_format(sample_rate: float, channels: int, where: str = "input") -> None:
    """Raise :class:`UnsupportedAudioError` unless rate and channel count are sane.

    ``sample_rate`` in Hz must lie in [8000, 384000]; ``channels`` in [1, 32].
    """
    if not (MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE) or sample_rate != int(sample_rate):
        raise UnsupportedAudioError(
            f"{where} has a sample rate of {sample_rate:g} Hz; Resonate accepts whole-number "
            f"rates from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz. The file header is probably "
            "corrupt, or the audio was exported with a wrong setting: re-export it at 44100 "
            "or 48000 Hz."
        )
    if not (1 <= channels <= MAX_CHANNELS):
        raise UnsupportedAudioError(
            f"{where} has {channels} channel(s); Resonate accepts 1 to {MAX_CHANNELS}. "
            "Re-export the recording as mono or stereo."
        )
