"""keras_dit.diffusion."""
