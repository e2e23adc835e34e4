"""keras_dit.data."""
