"""Models: the registry (versions, aliases, signed artifacts), training, labels and metrics."""
