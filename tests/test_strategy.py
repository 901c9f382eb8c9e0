"""Input-driven strategy: measured SNR sets how hard noise reduction works."""
from __future__ import annotations

import numpy as np

from engine.analysis.metrics import AudioAnalyzer
from engine.config import PipelineConfig
from resonate_stream.settings import Settings
from resonate_stream.strategy import adapt, noise_reduction_scale
from audio_fixtures import noise, sine


def _metrics(x: np.ndarray) -> dict:
    a = AudioAnalyzer(44100)
    a.update(x)
    return a.result().to_dict()


def test_clean_input_gets_gentler_noise_reduction_than_noisy_input():
    tone = sine([220, 330, 440, 660], seconds=6.0, amp=0.5)
    gaps = np.repeat((np.arange(tone.shape[1]) // 22050) % 2, 1)[None, :].astype(np.float32)  # on/off notes
    clean = tone * gaps + noise(6.0, rms=1e-4)
    noisy = tone * gaps + noise(6.0, rms=0.1)
    cfg = Settings.from_preset("balanced").pipeline_config()
    base = cfg.enhance
    c_clean, s_clean = adapt(cfg, _metrics(clean))
    c_noisy, s_noisy = adapt(cfg, _metrics(noisy))
    e_clean, e_noisy = c_clean.enhance, c_noisy.enhance
    assert s_clean["noise_reduction_scale"] < 1 < s_noisy["noise_reduction_scale"]
    assert e_clean.vocals.noise_reduction < base.vocals.noise_reduction < e_noisy.vocals.noise_reduction
    assert isinstance(c_noisy, PipelineConfig) and cfg.enhance is base  # a new typed config; the input untouched
    assert c_noisy.restore is cfg.restore and c_noisy.mix is cfg.mix and c_noisy.master is cfg.master
    assert s_clean["notes"] and s_noisy["notes"]


def test_scale_is_neutral_in_the_middle_and_unknown():
    assert noise_reduction_scale(20.0) == 1.0 and noise_reduction_scale(None) == 1.0


def test_clipping_is_reported_not_hidden():
    x = np.clip(sine(440, seconds=3.0, amp=2.0), -1, 1)
    _, s = adapt(PipelineConfig(), _metrics(x))
    assert any("clipped" in n for n in s["notes"])
