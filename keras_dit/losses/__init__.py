"""Losses of the autoencoder: VGG19 perceptual distance and the Gaussian KL."""

from keras_dit.losses.kl import gaussian_kl
from keras_dit.losses.perceptual import VGGPerceptualLoss, vgg_preprocess
