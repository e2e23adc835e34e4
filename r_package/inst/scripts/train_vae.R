#!/usr/bin/env Rscript
# Train a KL-VAE (the autoencoder of latent diffusion) and save it.
#
#   Rscript train_vae.R --data path/to/images --image_size 64 --epochs 20 --backend jax
#
# Writes <output>/vae.keras and <output>/vae_reconstructions.png (top row: inputs, bottom row: reconstructions).
# Next: Rscript scale_factor.R, then Rscript train_DiT.R.
# The perceptual loss downloads ImageNet VGG19 weights once (into ~/.keras/models/); offline, run with
# --perceptual_weight 0, or with --vgg_weights PATH to a copy of vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5.

# ---- Hyper-parameters: override any of them on the command line (--name value; "none" for NULL) ----
hp <- list(
  data = "digits",            # a folder of images, or a built-in data set: digits, synthetic
  image_size = 32,            # images are resized and cropped to this side
  channels = 1,               # 3 (RGB) or 1 (grayscale)
  preset = "kl-f4-tiny",      # KL-VAE preset: kl-f4-tiny, kl-f4-demo, kl-f4, kl-f8, kl-f16
  epochs = 6,
  batch_size = 32,
  learning_rate = 2e-3,
  kl_weight = 1e-6,
  perceptual_weight = 0,      # 0 trains without the VGG19 perceptual loss
  vgg_weights = "imagenet",   # VGG19 weights: imagenet (downloaded once), a .h5 file, or none (random)
  backend = "jax",            # jax or tensorflow
  output = "outputs",         # where vae.keras goes
  seed = 0
)

library(kerasdit)
hp <- script_args(hp)
if (is.null(hp)) quit(save = "no")

run_script({
  use_backend(hp$backend)
  data <- image_dataset(hp$data, image_size = hp$image_size, channels = hp$channels, batch_size = hp$batch_size,
                        seed = hp$seed)
  message(sprintf("Training %s on '%s' (%d batches of %d) for %d epochs on %s.", hp$preset, hp$data,
                  reticulate::py_len(data), hp$batch_size, hp$epochs, backend()))
  vae <- kl_vae(hp$preset, in_channels = hp$channels, seed = hp$seed) |>
    train_vae(data, epochs = hp$epochs, learning_rate = hp$learning_rate, kl_weight = hp$kl_weight,
              perceptual_weight = hp$perceptual_weight, vgg_weights = hp$vgg_weights, verbose = 2)
  path <- file.path(hp$output, "vae.keras")
  save_model(vae, path)
  batch <- data$`__getitem__`(0L)
  images <- if (is.list(batch)) batch[[1]] else batch
  n <- min(8, dim(images)[1])
  both <- array(0, c(2 * n, dim(images)[-1]))
  both[seq_len(n), , , ] <- images[seq_len(n), , , ]
  both[n + seq_len(n), , , ] <- pmin(pmax(to_array(vae(both[seq_len(n), , , , drop = FALSE])), -1), 1)
  save_images(both, file.path(hp$output, "vae_reconstructions.png"), ncol = n)
  message("Saved ", path, " and ", file.path(hp$output, "vae_reconstructions.png"), ".")
})
