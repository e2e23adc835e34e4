#!/usr/bin/env Rscript
# Train a class-conditional latent DiT on the VAE's latents, save it and draw one sample per class.
#
#   Rscript train_DiT.R --data path/to/images --image_size 64 --epochs 50 --backend jax
#
# Writes <output>/dit.keras (the whole diffusion model: DiT, objective, VAE and scale factor; load it with
# kerasdit::load_model) and <output>/samples.png. With --vae none the DiT works on pixels.

# ---- Hyper-parameters: override any of them on the command line (--name value; "none" for NULL) ----
hp <- list(
  data = "digits",            # a folder with one sub-folder per class, or digits / synthetic
  image_size = 32,
  channels = 1,
  vae = "outputs/vae.keras",  # from train_vae.R + scale_factor.R; none: pixel-space diffusion
  patch_size = 2,
  hidden_size = 128,
  depth = 4,
  num_heads = 4,
  class_dropout_prob = 0.1,   # label dropout, for classifier-free guidance
  objective = "flow",         # gaussian (DDPM) or flow (rectified flow)
  epochs = 30,
  batch_size = 64,
  learning_rate = 1e-3,
  lr_schedule = "constant",   # or cosine: decayed to 0 over the epochs
  sample_steps = 20,
  guidance_scale = 3,
  backend = "jax",
  output = "outputs",
  seed = 0
)

library(kerasdit)
hp <- script_args(hp)
if (is.null(hp)) quit(save = "no")

run_script({
  use_backend(hp$backend)
  vae <- if (!is.null(hp$vae)) load_model(hp$vae)
  data <- image_dataset(hp$data, image_size = hp$image_size, channels = hp$channels, batch_size = hp$batch_size,
                        condition = "labels", seed = hp$seed)
  classes <- unlist(data$class_names)
  factor <- if (is.null(vae)) 1 else vae$downsampling_factor
  model <- dit(input_size = hp$image_size %/% factor, patch_size = hp$patch_size,
               in_channels = if (is.null(vae)) hp$channels else vae$latent_channels,
               hidden_size = hp$hidden_size, depth = hp$depth, num_heads = hp$num_heads,
               num_classes = length(classes), class_dropout_prob = hp$class_dropout_prob, seed = hp$seed) |>
    diffusion_model(hp$objective, autoencoder = vae, seed = hp$seed)
  message(sprintf("Training a DiT (%d classes: %s) on '%s' for %d epochs on %s.", length(classes),
                  paste(utils::head(classes, 5), collapse = ", "), hp$data, hp$epochs, backend()))
  train_dit(model, data, epochs = hp$epochs, learning_rate = hp$learning_rate,
            lr_schedule = hp$lr_schedule, verbose = 2)
  path <- file.path(hp$output, "dit.keras")
  save_model(model, path)
  labels <- seq_along(classes) - 1
  generate_images(model, labels, num_steps = hp$sample_steps, guidance_scale = hp$guidance_scale, seed = hp$seed) |>
    save_images(file.path(hp$output, "samples.png"))
  message("Saved ", path, " and ", file.path(hp$output, "samples.png"), " (one sample per class).")
})
