"""Data: image folders streamed from disk, built-in data sets, and the tag / parameter annotations they carry.

Every data set is a ``keras.utils.PyDataset`` yielding ``(images, condition)`` batches (images alone when
unconditional), images float32 (B, H, W, C) in [-1, 1], so ``model.fit(data)`` works on every backend.
"""

from keras_dit.data.alphabet_challenge import (
    LETTERS, PARAM_NAMES, alphabet, alphabet_params, describe_alphabet, render_alphabet,
)
from keras_dit.data.annotations import (
    build_tag_vocabulary, multi_hot, parse_tags, read_params, read_tag_vocabulary, read_tags_csv,
)
from keras_dit.data.builtin import (
    BUILTIN_DATASETS, DIGIT_NAMES, SYNTHETIC_CLASSES, digits, digits_arrays, load_builtin, load_dataset,
    synthetic, synthetic_scores,
)
from keras_dit.data.dataset import ArrayDataset, BatchedDataset
from keras_dit.data.image_folder import ImageFolder, list_images
from keras_dit.data.images import IMAGE_EXTENSIONS, load_image, to_float, to_uint8
from keras_dit.latent.latent_cache import LatentDataset, read_latent_cache, write_latent_cache
