"""Discrete-state diffusion (Campbell et al. 2022): rate matrices, the ``DiscreteCTMC`` objective and its samplers.

Pixels are categorical (S states per channel). Train a ``kd.models.CategoricalBackbone`` with
``kd.tasks.DiffusionModel(backbone, DiscreteCTMC(S))``; sample with ``TauLeaping`` or ``DiscreteEuler``
(``generate`` here adds classifier-free guidance on the logits).
"""

from keras_dit.diffusion.discrete.objective import DiscreteCTMC, inverse_cdf, normal_to_uniform
from keras_dit.diffusion.discrete.rates import RATE_MATRICES, RateMatrix
from keras_dit.diffusion.discrete.samplers import DISCRETE_SAMPLERS, DiscreteEuler, DiscreteSampler, TauLeaping
