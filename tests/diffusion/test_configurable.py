"""The Configurable mixin: ``from_config`` and ``repr`` of objectives and samplers come from ``get_config`` (the
``repr`` is a constructor call that rebuilds the instance)."""

import pytest

import keras_dit as kd
from keras_dit.diffusion.configurable import Configurable


@pytest.mark.parametrize("instance", [kd.diffusion.RectifiedFlow(shift=2.0), kd.samplers.DDIM(eta=0.3),
                                      kd.samplers.DDPM(variance="large")])
def test_objectives_and_samplers_are_configurable(instance):
    assert isinstance(instance, Configurable)
    clone = type(instance).from_config(instance.get_config())
    assert type(clone) is type(instance) and clone.get_config() == instance.get_config()
    rebuilt = eval(repr(instance), {type(instance).__name__: type(instance)})  # repr is a constructor call
    assert rebuilt.get_config() == instance.get_config() and repr(clone) == repr(instance)


def test_repr_names_the_subclass_and_its_arguments():
    class Point(Configurable):
        def __init__(self, x, label="a"):
            self.x, self.label = x, label

        def get_config(self):
            return {"x": self.x, "label": self.label}

    point = Point.from_config({"x": 1.5, "label": "b"})
    assert isinstance(point, Point) and repr(point) == "Point(x=1.5, label='b')"
    with pytest.raises(NotImplementedError):
        Configurable().get_config()
