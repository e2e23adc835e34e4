"""Condition encoders: class labels, multi-hot tags, parameter vectors; each with a null condition for CFG."""

from keras_dit.conditioning.base import Conditioner
from keras_dit.conditioning.class_labels import ClassConditioner
from keras_dit.conditioning.factory import get_conditioner
from keras_dit.conditioning.parameters import ParameterConditioner
from keras_dit.conditioning.tags import TagConditioner
