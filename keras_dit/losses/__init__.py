"""keras_dit.losses."""
