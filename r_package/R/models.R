# Model constructors: thin wrappers over keras_dit.models and keras_dit.tasks. Each takes a preset name and/or
# the Python constructor's arguments (whole numbers where Python wants int), and returns the Python model.

INTEGER_ARGS <- c(
  "input_size", "patch_size", "in_channels", "out_channels", "hidden_size", "depth", "num_heads", "num_classes",
  "seed", "base_channels", "channel_multipliers", "num_res_blocks", "latent_channels", "norm_groups",
  "num_mixer_layers", "num_double_layers", "num_single_layers", "num_experts", "shared_experts", "moe_every",
  "num_train_timesteps"
)

build_model <- function(class_name, preset, args, kind) {
  preset <- check_string(preset, "preset", null_ok = TRUE)
  if (length(args) && (is.null(names(args)) || !all(nzchar(names(args))))) {
    kerasdit_error("Give the constructor's arguments by name after the preset, e.g. input_size = 32.")
  }
  cls <- keras_dit()$models[[class_name]]
  args <- py_args(args, INTEGER_ARGS)
  model <- py_call(if (is.null(preset)) do.call(cls, args) else do.call(cls$from_preset, c(list(preset), args)))
  as_kerasdit(model, kind)
}

# The R classes of a kerasdit model ("kerasdit_<kind>", "kerasdit_model") in front of reticulate's, for print().
as_kerasdit <- function(model, kind) {
  if (!inherits(model, "kerasdit_model")) class(model) <- c(paste0("kerasdit_", kind), "kerasdit_model", class(model))
  model
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
#' @return The Python `KLVAE`, with R class `kerasdit_vae` (see [print.kerasdit_model()]).
#' @examples
#' \dontrun{
#' vae <- kl_vae("kl-f4-tiny", in_channels = 1)
#' }
#' @export
kl_vae <- function(preset = NULL, ...) build_model("KLVAE", preset, list(...), "vae")

#' DiT backbone
#'
#' A Diffusion Transformer (`keras_dit.models.DiT`), class-conditional when
#' `num_classes` is given.
#'
#' @param preset a preset (`"DiT-S/2"` ... `"DiT-XL/8"`) or `NULL`.
#' @param ... constructor arguments: `input_size`, `patch_size`, `in_channels`,
#'   `hidden_size`, `depth`, `num_heads`, `mlp_ratio`, `learn_sigma`,
#'   `num_classes`, `class_dropout_prob`, `seed`, ...
#' @return The Python `DiT`, with R class `kerasdit_backbone`.
#' @examples
#' \dontrun{
#' backbone <- dit(input_size = 8, patch_size = 2, in_channels = 4, hidden_size = 32,
#'                 depth = 2, num_heads = 2, num_classes = 10)
#' }
#' @export
dit <- function(preset = NULL, ...) build_model("DiT", preset, list(...), "backbone")

#' U-ViT backbone
#'
#' A U-ViT (`keras_dit.models.UViT`): a ViT with long skip connections.
#'
#' @inheritParams dit
#' @param ... constructor arguments: `input_size`, `patch_size`, `in_channels`,
#'   `hidden_size`, `depth` (odd), `num_heads`, `num_classes` or `conditioner`, ...
#' @return The Python `UViT`, with R class `kerasdit_backbone`.
#' @export
uvit <- function(preset = NULL, ...) build_model("UViT", preset, list(...), "backbone")

#' ReiMei backbone
#'
#' A ReiMei backbone (`keras_dit.models.ReiMei`): token mixer, MM-DiT double
#' blocks and single blocks with 2D RoPE, optionally expert-choice MoE.
#'
#' @inheritParams dit
#' @param ... constructor arguments: `input_size`, `patch_size`, `in_channels`,
#'   `hidden_size`, `num_heads`, `num_mixer_layers`, `num_double_layers`,
#'   `num_single_layers`, `num_classes` or `conditioner`, ...
#' @return The Python `ReiMei`, with R class `kerasdit_backbone`.
#' @export
reimei <- function(preset = NULL, ...) build_model("ReiMei", preset, list(...), "backbone")

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
#' @return The Python `DiffusionModel`, with R class `kerasdit_diffusion_model`.
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
  backbone <- check_model(backbone, "backbone", "backbone")
  if (!is.null(autoencoder)) {
    autoencoder <- check_model(autoencoder, "autoencoder", "vae")
    if (autoencoder$latent_channels != backbone$in_channels) {
      kerasdit_error(sprintf(paste(
        "'autoencoder' makes %d-channel latents but the backbone takes in_channels = %d; build the backbone with",
        "in_channels = %d."), autoencoder$latent_channels, backbone$in_channels, autoencoder$latent_channels))
    }
  }
  scale_factor <- check_number(scale_factor, "scale_factor", 0, above = TRUE, null_ok = TRUE)
  cfg_dropout <- check_number(cfg_dropout, "cfg_dropout", 0, 1, null_ok = TRUE)
  seed <- check_number(seed, "seed", whole = TRUE, null_ok = TRUE)
  if (is.character(objective)) {
    objective <- check_string(objective[1], "objective", c("gaussian", "flow"))
    extra <- py_args(list(...), INTEGER_ARGS)
    objective <- py_call(if (objective == "gaussian") {
      learn_sigma <- reticulate::py_has_attr(backbone, "learn_sigma") && isTRUE(backbone$learn_sigma)
      do.call(kd$diffusion$GaussianDiffusion, c(list(learn_sigma = learn_sigma), extra))
    } else {
      do.call(kd$diffusion$RectifiedFlow, extra)
    })
  } else if (!inherits(objective, "python.builtin.object")) {
    kerasdit_error(sprintf("'objective' must be \"gaussian\", \"flow\" or a Python objective, got %s.",
                           show_value(objective)))
  }
  model <- py_call(kd$tasks$DiffusionModel(backbone, objective, autoencoder = autoencoder,
                                           scale_factor = scale_factor, cfg_dropout = cfg_dropout, seed = seed))
  as_kerasdit(model, "diffusion_model")
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
  if (is.null(model_kind(model))) {
    kerasdit_error(sprintf("'model' must be a kerasdit model (diffusion model, KL-VAE or backbone), got %s.",
                           show_value(model)))
  }
  path <- check_string(path, "path")
  if (!grepl("\\.keras$", path)) kerasdit_error(sprintf("'path' must end in .keras, got '%s'.", path))
  dir.create(dirname(path), showWarnings = FALSE, recursive = TRUE)
  py_call(model$save(path))
  invisible(model)
}

#' @rdname save_model
#' @export
load_model <- function(path) {
  path <- check_string(path, "path")
  if (!file.exists(path) || dir.exists(path)) {
    kerasdit_error(sprintf("No model file '%s' (in %s). Train one first (see the scripts in %s).", path, getwd(),
                           "system.file('scripts', package = 'kerasdit')"))
  }
  path <- normalizePath(path)
  # A .keras file is a zip archive; anything else (an interrupted copy, another format) is reported as such.
  if (!identical(readBin(path, "raw", 4), as.raw(c(0x50, 0x4b, 0x03, 0x04)))) {
    kerasdit_error(sprintf(paste(
      "'%s' is not a .keras model file (a zip archive): it is truncated, corrupt or of another format.",
      "Save the model again with save_model() or the training script."), path))
  }
  kd <- keras_dit()
  model <- tryCatch(reticulate::import("keras")$saving$load_model(path), error = function(e) {
    kerasdit_error(sprintf("Could not load the model in '%s': %s", path, python_message(e)),
                   class = "kerasdit_python_error")
  })
  kind <- model_kind(model)
  if (is.null(kind)) model else as_kerasdit(model, kind)
}

#' Print a kerasdit model
#'
#' One line with the kind of model, its parameter count and the backend, then
#' its sizes (and for a diffusion model its objective, autoencoder, scale
#' factor and training so far).
#'
#' @param x a model from [dit()], [uvit()], [reimei()], [kl_vae()],
#'   [diffusion_model()] or [load_model()].
#' @param ... ignored.
#' @return `x`, invisibly.
#' @export
print.kerasdit_model <- function(x, ...) {
  cat(format(x), sep = "\n")
  invisible(x)
}

#' @export
format.kerasdit_model <- function(x, ...) {
  kind <- model_kind(x)
  params <- format(as.numeric(x$count_params()), big.mark = ",", scientific = FALSE)
  head <- sprintf("<kerasdit %s> %s: %s parameters, backend %s", sub("_", " ", kind), python_class(x), params,
                  backend())
  c(head, switch(kind,
    backbone = paste0("  ", describe_backbone(x)),
    vae = paste0("  ", describe_vae(x)),
    diffusion_model = c(
      sprintf("  objective %s; makes %s images", python_class(x$objective), paste(output_shape(x), collapse = " x ")),
      sprintf("  backbone %s", describe_backbone(x$backbone)),
      if (!is.null(x$autoencoder)) sprintf("  autoencoder %s", describe_vae(x$autoencoder)),
      describe_history(training_history(x))
    )))
}

# The Python class name of an object, without its module ("DiT").
python_class <- function(x) sub("^.*\\.", "", grep("^kerasdit_", class(x), value = TRUE, invert = TRUE)[1])

describe_backbone <- function(backbone) {
  config <- backbone$get_config()
  keys <- intersect(c("input_size", "patch_size", "in_channels", "hidden_size", "depth", "num_heads",
                      "num_classes"), names(config))
  keys <- keys[!vapply(config[keys], is.null, logical(1))]
  values <- vapply(keys, function(k) paste(format(config[[k]]), collapse = ","), "")
  paste(python_class(backbone), paste(keys, values, sep = " ", collapse = ", "))
}

describe_vae <- function(vae) {
  factor <- vae$scale_factor
  sprintf("%d -> %d latent channels, downsampling x%d, scale factor %s", vae$in_channels, vae$latent_channels,
          vae$downsampling_factor, if (is.null(factor)) "not measured" else format(as.numeric(factor), digits = 4))
}

# (height, width, channels) of the images a diffusion model generates.
output_shape <- function(model) {
  backbone <- model$backbone
  vae <- model$autoencoder
  if (is.null(vae)) return(c(backbone$input_size, backbone$input_size, backbone$in_channels))
  size <- backbone$input_size * vae$downsampling_factor
  c(size, size, vae$in_channels)
}
