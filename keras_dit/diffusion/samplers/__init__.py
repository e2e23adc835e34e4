"""Samplers: turn noise into data with a model function ``model_fn(x, t)``."""
