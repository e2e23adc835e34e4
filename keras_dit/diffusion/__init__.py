"""keras_dit.diffusion: training objectives, their noise schedules, and (in ``samplers``) the samplers.

Time convention: ``GaussianDiffusion`` uses integer-valued float timesteps in [0, T); ``RectifiedFlow`` uses
t in [0, 1] with x_t = (1 - t) x0 + t eps (t = 1 is noise) and feeds the backbone 1000 t.
"""

from keras_dit.diffusion.flow import RectifiedFlow, shift_time
from keras_dit.diffusion.gaussian import GaussianDiffusion
from keras_dit.diffusion.likelihood import discretized_gaussian_log_likelihood, normal_kl
from keras_dit.diffusion.objective import Objective
from keras_dit.diffusion.schedules import SCHEDULES, beta_schedule
from keras_dit.diffusion import samplers
from keras_dit.diffusion import discrete
from keras_dit.diffusion.discrete import DiscreteCTMC
