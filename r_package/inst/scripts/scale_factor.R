#!/usr/bin/env Rscript
# Measure the latent scale factor (1 / sd of the VAE's latents over the data) and store it in the VAE.
#
#   Rscript scale_factor.R --data path/to/images --image_size 64 --vae outputs/vae.keras
#
# Rewrites <vae> with the factor in its config (train_DiT.R picks it up) and writes <output>/scale_factor.txt.

# ---- Hyper-parameters: override any of them on the command line (--name value; "none" for NULL) ----
hp <- list(
  data = "digits",            # the data the VAE was trained on: a folder, or digits / synthetic
  image_size = 32,
  channels = 1,
  vae = "outputs/vae.keras",  # written by train_vae.R
  batch_size = 64,
  max_batches = 50,           # enough batches for a stable estimate; none uses all
  backend = "jax",
  output = "outputs"
)

library(kerasdit)
hp <- script_args(hp)
if (is.null(hp)) quit(save = "no")

run_script({
  use_backend(hp$backend)
  vae <- load_model(hp$vae)
  data <- image_dataset(hp$data, image_size = hp$image_size, channels = hp$channels, batch_size = hp$batch_size)
  message(sprintf("Measuring the latent scale factor of %s on '%s' with %s.", hp$vae, hp$data, backend()))
  factor <- compute_scale_factor(vae, data, max_batches = hp$max_batches)
  save_model(vae, hp$vae)
  dir.create(hp$output, showWarnings = FALSE, recursive = TRUE)
  writeLines(format(factor, digits = 10), file.path(hp$output, "scale_factor.txt"))
  message(sprintf("Scale factor %.5g stored in %s and written to %s.", factor, hp$vae,
                  file.path(hp$output, "scale_factor.txt")))
})
