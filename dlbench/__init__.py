"""dlbench: sweep optimizers, learning rates and batch sizes; exact, resumable, fast."""

__version__ = "0.1.0"

# Bump when the on-disk layout of results/<sweep>/ changes; readers refuse newer versions.
SCHEMA_VERSION = 1
