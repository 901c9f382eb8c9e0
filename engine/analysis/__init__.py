"""Quality analysis (module 10): streaming metrics of a recording.

See :mod:`engine.analysis.metrics` for what each metric measures.
"""
from .metrics import AudioAnalyzer, AudioMetrics, analyze_array, analyze_file, quality_terms

__all__ = ["AudioAnalyzer", "AudioMetrics", "analyze_array", "analyze_file", "quality_terms"]
