"""MBD polish (module 12): a windowed model stage after enhancement, before the mix.

``config`` (the ``polish`` settings section), ``mbd_loader`` (AudioCraft's own
loader, offline folders, weights_only allow-list), ``mbd_polisher`` (one
window: mid/side, 24 kHz, regenerate, re_eq, crossover), ``streaming`` (the
lane: planner -> windows -> overlap-add), ``factory`` (build it; provenance).
"""
