"""The per-window analyses: one pure step from a window's inputs to its typed result."""
