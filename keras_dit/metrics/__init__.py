"""keras_dit.metrics."""
