"""ff_numpy: the Forward-Forward algorithm in pure NumPy, with hand-derived gradients."""

__version__ = "0.1.0"
