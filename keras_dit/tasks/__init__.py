"""keras_dit.tasks."""
