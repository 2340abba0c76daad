"""rocksynth: digital rock and image-sequence toolkit (reconstruct, synthesize, analyze, predict, clean).

The command-line tool is `rocksynth`; the same work on arrays is this package's API
(`rocksynth.api`, importable from here)::

    import rocksynth
    volume = rocksynth.reconstruct(slice_mask, model="berea", depth=128)
    report = rocksynth.analyze(volume, voxel_size=5.345e-6)
"""

__version__ = "0.1.0"

__all__ = ["analyze", "clean", "compare", "predict", "reconstruct", "synthesize"]


def __getattr__(name: str):
    # Imported on first use: `import rocksynth` (and every command's start) stays free of torch.
    if name in __all__:
        from rocksynth import api

        return getattr(api, name)
    raise AttributeError(f"module 'rocksynth' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
