"""Condition encoders: class labels, multi-hot tags, parameter vectors; each with a null condition for CFG."""

from keras_dit.conditioning.class_labels import ClassLabelEmbedding
