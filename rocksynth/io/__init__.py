"""Reading and writing volumes, images and videos; segmentation of grayscale input.

Every command goes through these readers and writers, so formats, `-` for stdin/stdout,
atomic writes and error messages behave the same everywhere.
"""
