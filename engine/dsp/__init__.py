"""Low-level DSP building blocks shared by the streaming stages.

Everything here is stateless design maths or an explicit-state kernel: the
caller owns the state arrays and passes them in, so a stage stays chunk-size
invariant by carrying them from one block to the next.

* :mod:`engine.dsp.biquad` - RBJ cookbook / Butterworth second-order sections
  and :class:`SosFilter` (a cascade with carried ``zi``).
* :mod:`engine.dsp.filters` - Butterworth design, the DF2T ``sosfilt`` kernel,
  windows and FIR design, in place of ``scipy.signal`` (a 1 s import).
* :mod:`engine.dsp.envelope` - time-constant maths and numba envelope followers.
* :mod:`engine.dsp.dynamics` - numba gain computers (compressor, gate /
  expander, transient shaper, relative-level de-esser).
* :mod:`engine.dsp.harmonics` - envelope-normalised Chebyshev harmonic generator.
* :mod:`engine.dsp.stft` - :class:`StreamingSTFTStage`, the one chunk-size
  invariant STFT -> spectral processing -> overlap-add framework every
  spectral stage is built on.
* :mod:`engine.dsp.noise_floor` - per-bin noise-floor tracking, running median
  across bins and spectral-gate kernels.
"""
