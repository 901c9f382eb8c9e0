"""JASCO generation (module 11): profile the separated stems (chords, melody, tempo, key, drums),
generate 10 s windows conditioned on them, stitch by crossfade; every output is labelled AI-generated.

``profile`` (ProfileStage and the pure extractors), ``config`` (the ``generate``
settings section), ``jasco`` (the loader and the per-window generator),
``streaming`` (the windowed generation lane and its crossfade stitcher).
"""
