"""Losses: the autoencoder's VGG19 perceptual distance and Gaussian KL; REPA's representation alignment."""

from keras_dit.losses.kl import gaussian_kl
from keras_dit.losses.perceptual import VGGPerceptualLoss, vgg_preprocess
from keras_dit.losses.repa import REPA
