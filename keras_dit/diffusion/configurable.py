"""``Configurable``: ``from_config`` and ``__repr__`` from ``get_config``, for the plain Python objects of the
diffusion package (objectives and samplers) that are not Keras layers but serialize like them."""


class Configurable:
    """Mixin: ``cls.from_config(config)`` is ``cls(**config)`` and ``repr`` is ``Name(key=value, ...)``, both from
    ``get_config()``, which subclasses implement (their constructor arguments)."""

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
