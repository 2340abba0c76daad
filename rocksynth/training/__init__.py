"""Training loops, one module per model, and shared checkpoint / logging helpers."""
