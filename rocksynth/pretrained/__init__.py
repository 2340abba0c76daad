"""Shipped checkpoints (`<name>.pt`) with a model card each (`<name>.md`), found via importlib.resources."""
