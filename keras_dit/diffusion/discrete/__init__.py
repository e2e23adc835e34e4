"""Discrete-state diffusion (Campbell et al. 2022): rate matrices, the ``DiscreteCTMC`` objective and its samplers.

Pixels are categorical (S states per channel). Train a ``kd.models.CategoricalBackbone`` with
``kd.tasks.DiffusionModel(backbone, DiscreteCTMC(S))``; its ``generate`` samples with ``TauLeaping`` (the
default) or ``DiscreteEuler``, classifier-free guided on the logits. From the command line:
``keras-dit train|sample -c discrete-digits`` (``objective.kind: discrete`` and the ``discrete.*`` config keys).
"""

from keras_dit.diffusion.discrete.objective import DiscreteCTMC, inverse_cdf, normal_to_uniform
from keras_dit.diffusion.discrete.rates import RATE_MATRICES, RateMatrix
from keras_dit.diffusion.discrete.samplers import DISCRETE_SAMPLERS, DiscreteEuler, DiscreteSampler, TauLeaping
