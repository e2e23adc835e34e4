# Model constructors: thin wrappers over keras_dit.models and keras_dit.tasks. Each takes a preset name and/or
# the Python constructor's arguments (whole numbers where Python wants int), and returns the Python model.

INTEGER_ARGS <- c(
  "input_size", "patch_size", "in_channels", "out_channels", "hidden_size", "depth", "num_heads", "num_classes",
  "seed", "base_channels", "channel_multipliers", "num_res_blocks", "latent_channels", "norm_groups",
  "num_mixer_layers", "num_double_layers", "num_single_layers", "num_experts", "shared_experts", "moe_every",
  "num_train_timesteps"
)

build_model <- function(class_name, preset, args) {
  cls <- keras_dit()$models[[class_name]]
  args <- py_args(args, INTEGER_ARGS)
  py_call(if (is.null(preset)) do.call(cls, args) else do.call(cls$from_preset, c(list(preset), args)),
          call = sys.call(-1))
}

#' KL-VAE autoencoder
#'
#' The Stable-Diffusion-style KL-regularised autoencoder (`keras_dit.models.KLVAE`).
#'
#' @param preset a preset name (`"kl-f4"`, `"kl-f8"`, `"kl-f16"`, `"kl-f4-demo"`,
#'   `"kl-f4-tiny"`) or `NULL` to give every argument.
#' @param ... constructor arguments (`in_channels`, `base_channels`,
#'   `channel_multipliers`, `num_res_blocks`, `latent_channels`, `norm_groups`,
#'   `seed`, ...); they override the preset's.
#' @return The Python `KLVAE`.
#' @examples
#' \dontrun{
#' vae <- kl_vae("kl-f4-tiny", in_channels = 1)
#' }
#' @export
kl_vae <- function(preset = NULL, ...) build_model("KLVAE", preset, list(...))

#' DiT backbone
#'
#' A Diffusion Transformer (`keras_dit.models.DiT`), class-conditional when
#' `num_classes` is given.
#'
#' @param preset a preset (`"DiT-S/2"` ... `"DiT-XL/8"`) or `NULL`.
#' @param ... constructor arguments: `input_size`, `patch_size`, `in_channels`,
#'   `hidden_size`, `depth`, `num_heads`, `mlp_ratio`, `learn_sigma`,
#'   `num_classes`, `class_dropout_prob`, `seed`, ...
#' @return The Python `DiT`.
#' @examples
#' \dontrun{
#' backbone <- dit(input_size = 8, patch_size = 2, in_channels = 4, hidden_size = 32,
#'                 depth = 2, num_heads = 2, num_classes = 10)
#' }
#' @export
dit <- function(preset = NULL, ...) build_model("DiT", preset, list(...))

#' U-ViT backbone
#'
#' A U-ViT (`keras_dit.models.UViT`): a ViT with long skip connections.
#'
#' @inheritParams dit
#' @param ... constructor arguments: `input_size`, `patch_size`, `in_channels`,
#'   `hidden_size`, `depth` (odd), `num_heads`, `num_classes` or `conditioner`, ...
#' @return The Python `UViT`.
#' @export
uvit <- function(preset = NULL, ...) build_model("UViT", preset, list(...))

#' ReiMei backbone
#'
#' A ReiMei backbone (`keras_dit.models.ReiMei`): token mixer, MM-DiT double
#' blocks and single blocks with 2D RoPE, optionally expert-choice MoE.
#'
#' @inheritParams dit
#' @param ... constructor arguments: `input_size`, `patch_size`, `in_channels`,
#'   `hidden_size`, `num_heads`, `num_mixer_layers`, `num_double_layers`,
#'   `num_single_layers`, `num_classes` or `conditioner`, ...
#' @return The Python `ReiMei`.
#' @export
reimei <- function(preset = NULL, ...) build_model("ReiMei", preset, list(...))

#' Diffusion model
#'
#' Joins a backbone, an objective and optionally a frozen autoencoder into the
#' `keras_dit.tasks.DiffusionModel` that [train_dit()] fits and
#' [generate_images()] samples.
#'
#' @param backbone a backbone from [dit()], [uvit()] or [reimei()].
#' @param objective `"gaussian"` (DDPM / DiT; the variance is learned when the
#'   backbone has `learn_sigma`), `"flow"` (rectified flow) or a Python objective.
#' @param autoencoder optional [kl_vae()]; training images are encoded with it
#'   and generated latents decoded. Its channels must match the backbone's.
#' @param scale_factor latent scale; `NULL` takes the autoencoder's (see
#'   [compute_scale_factor()]).
#' @param cfg_dropout rate of condition dropout for classifier-free guidance;
#'   `NULL` keeps the backbone's.
#' @param seed seed of the training noise.
#' @param ... more arguments of the objective (e.g. `prediction = "v"`,
#'   `schedule = "cosine"`, `shift = 3`).
#' @return The Python `DiffusionModel`.
#' @examples
#' \dontrun{
#' model <- dit(input_size = 8, patch_size = 2, in_channels = 4, hidden_size = 32, depth = 2,
#'              num_heads = 2, num_classes = 10) |>
#'   diffusion_model("gaussian", autoencoder = vae)
#' }
#' @export
diffusion_model <- function(backbone, objective = c("gaussian", "flow"), autoencoder = NULL,
                            scale_factor = NULL, cfg_dropout = NULL, seed = NULL, ...) {
  kd <- keras_dit()
  if (is.character(objective)) {
    objective <- match.arg(objective)
    extra <- py_args(list(...), INTEGER_ARGS)
    objective <- py_call(if (objective == "gaussian") {
      learn_sigma <- reticulate::py_has_attr(backbone, "learn_sigma") && isTRUE(backbone$learn_sigma)
      do.call(kd$diffusion$GaussianDiffusion, c(list(learn_sigma = learn_sigma), extra))
    } else {
      do.call(kd$diffusion$RectifiedFlow, extra)
    })
  }
  py_call(kd$tasks$DiffusionModel(backbone, objective, autoencoder = autoencoder, scale_factor = scale_factor,
                                   cfg_dropout = cfg_dropout, seed = as_whole(seed, "seed")))
}

#' Save and load models
#'
#' `save_model()` writes a `.keras` file (architecture, weights, and for a
#' diffusion model its autoencoder and scale factor); `load_model()` reads one.
#'
#' @param model a model.
#' @param path the `.keras` file.
#' @return `save_model()`: the model, invisibly; `load_model()`: the model.
#' @export
save_model <- function(model, path) {
  if (!grepl("\\.keras$", path)) input_error("Model files end in .keras, got '", path, "'.")
  dir.create(dirname(path), showWarnings = FALSE, recursive = TRUE)
  py_call(model$save(path))
  invisible(model)
}

#' @rdname save_model
#' @export
load_model <- function(path) {
  if (!file.exists(path)) {
    input_error("No model file '", path, "'. Train one first (see the scripts in ",
                "system.file('scripts', package = 'kerasdit')).")
  }
  kd <- keras_dit()
  py_call(reticulate::import("keras")$saving$load_model(normalizePath(path)))
}
