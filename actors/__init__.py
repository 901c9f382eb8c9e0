"""Thin Ray actors over the engine's stages (placement and restart policy only)."""
