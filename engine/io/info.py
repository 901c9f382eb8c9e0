"""What a probed audio source is."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioInfo:
    """Facts about an audio file as stored (before conversion to 44.1 kHz stereo).

    ``sample_rate`` in Hz and ``channels`` are the source's; ``frames`` is
    the number of source sample frames (per channel) when the container states
    it, else ``None``; ``duration_s`` in seconds likewise.  ``container`` is a
    short lower-case name (``wav``, ``flac``, ``ogg``, ``mp3``, ``mp4``, ...),
    ``codec`` the stream's encoding (``pcm_16``, ``vorbis``, ``aac``, ...),
    ``backend`` the library that decodes it (``soundfile`` or ``pyav``),
    ``channel_names`` the source's channel layout when known (``("FL", "FR")``).
    """

    path: str
    container: str
    codec: str
    sample_rate: int
    channels: int
    frames: int | None
    duration_s: float | None
    backend: str = "soundfile"
    channel_names: tuple[str, ...] | None = None

    @property
    def format(self) -> str:
        """Alias of ``container``."""
        return self.container
