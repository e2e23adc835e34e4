"""Backbones (DiT, U-ViT, ReiMei) and autoencoders (KL-VAE), each with presets."""

from keras_dit.models.backbone import Backbone
from keras_dit.models.dit import DiT
from keras_dit.latent.kl_vae import KLVAE
from keras_dit.models.reimei import ReiMei
from keras_dit.models.uvit import UViT
from keras_dit.models.categorical import CategoricalBackbone
