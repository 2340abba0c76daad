"""rocksynth: digital rock and image-sequence toolkit (reconstruct, synthesize, analyze, predict, clean)."""

__version__ = "0.1.0"
