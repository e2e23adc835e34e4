# Data sets, training and sampling: the steps of the pipeline, each returning what the next one takes.

BUILTIN_DATA <- c("digits", "synthetic", "alphabet")

#' Training data
#'
#' Turns R images, an image folder or a built-in data set into the batched
#' `keras_dit.data` data set that [train_vae()], [compute_scale_factor()] and
#' [train_dit()] read. The training functions call it for you; call it yourself
#' to reuse one data set.
#'
#' @param data one of: an image array (see [as_image_array()]); a list with
#'   `images` and `labels`; the path of a folder of images (class sub-folders
#'   when `condition = "labels"`); the name of a built-in data set (`"digits"`,
#'   `"synthetic"`, `"alphabet"`); or a Python data set, returned as it is.
#' @param labels class labels of an image array (0-based, see [as_labels()]).
#' @param batch_size images per batch.
#' @param image_size side of the images read from a folder or built in.
#' @param condition for a folder: `NULL`, `"labels"`, `"tags"` or `"params"`.
#' @param shuffle draw a new order every epoch.
#' @param seed seed of the order.
#' @param ... more options of the Python data set (e.g. `channels`, `flip`,
#'   `num_images` for `"synthetic"`).
#' @return A Python `keras.utils.PyDataset`.
#' @examples
#' \dontrun{
#' data <- image_dataset(array(0L, c(16, 8, 8, 1)), labels = rep(0:3, 4), batch_size = 8)
#' }
#' @export
image_dataset <- function(data, labels = NULL, batch_size = 32, image_size = NULL, condition = NULL,
                          shuffle = TRUE, seed = 0, ...) {
  if (inherits(data, "python.builtin.object")) return(data)
  batch_size <- check_number(batch_size, "batch_size", 1, whole = TRUE)
  image_size <- check_number(image_size, "image_size", 1, whole = TRUE, null_ok = TRUE)
  condition <- check_string(condition, "condition", c("labels", "tags", "params"), null_ok = TRUE)
  shuffle <- check_flag(shuffle, "shuffle")
  seed <- check_number(seed, "seed", whole = TRUE)
  if (is.character(data) && length(data) == 1 && !data %in% BUILTIN_DATA && !dir.exists(data)) {
    input_error(sprintf("'data' = '%s' is neither an existing folder of images nor a built-in data set (%s).",
                        data, paste(BUILTIN_DATA, collapse = ", ")))
  }
  kd <- keras_dit()
  options <- py_args(c(list(batch_size = batch_size, shuffle = shuffle, seed = seed), list(...)),
                     c(INTEGER_ARGS, "batch_size", "num_images", "channels", "image_size"))
  if (is.character(data) && length(data) == 1) {
    if (data %in% BUILTIN_DATA) {
      if (!is.null(image_size)) options$image_size <- image_size
      return(py_call(do.call(kd$data$load_builtin, c(list(data), options))))
    }
    if (is.null(image_size)) input_error("Reading images from a folder needs 'image_size' (e.g. 32).")
    return(py_call(do.call(kd$data$ImageFolder, c(list(normalizePath(data), image_size, condition = condition),
                                                   options))))
  }
  if (is.character(data)) {
    kerasdit_error(sprintf("'data' must be one folder or built-in data set name, got %s.", show_value(data)))
  }
  if (is.list(data) && !is.data.frame(data) && "images" %in% names(data)) {
    labels <- data$labels
    data <- data$images
  }
  count <- dim(as_image_array(data, "data"))[1]
  images <- images_to_numpy(data, "data")
  if (is.null(labels)) return(py_call(do.call(kd$data$ArrayDataset, c(list(images), options))))
  labels <- as_labels(labels)
  if (length(labels) != count) {
    input_error(sprintf("There are %d labels for %d images; give one label per image.", length(labels), count))
  }
  py_call(do.call(kd$data$ArrayDataset, c(list(images, reticulate::np_array(labels, "int32"), "labels"), options)))
}

#' Train a KL-VAE
#'
#' Fits the autoencoder on reconstruction (L1) + KL + VGG19 perceptual losses
#' with Adam (`keras_dit.tasks.VAETrainer`).
#'
#' @param vae a [kl_vae()].
#' @param data training images, see [image_dataset()] (labels are ignored).
#' @param epochs passes over the data.
#' @param batch_size images per batch.
#' @param learning_rate Adam's learning rate.
#' @param kl_weight weight of the KL term (1e-6 is Stable Diffusion's).
#' @param perceptual_weight weight of the perceptual term; 0 skips the VGG19.
#' @param vgg_weights VGG19 weights for the perceptual loss: `"imagenet"`
#'   (downloaded once), the path of a `.h5` file, or `NULL` (random).
#' @param verbose Keras progress output: 0 silent, 1 progress bar, 2 one line
#'   per epoch.
#' @param ... more arguments of [image_dataset()].
#' @return The trained `vae`, invisibly; its losses per epoch are in [training_history()].
#' @export
train_vae <- function(vae, data, epochs = 1, batch_size = 16, learning_rate = 1e-4, kl_weight = 1e-6,
                      perceptual_weight = 0.1, vgg_weights = "imagenet", verbose = 1, ...) {
  kd <- keras_dit()
  vae <- check_model(vae, "vae", "vae")
  epochs <- check_number(epochs, "epochs", 1, whole = TRUE)
  learning_rate <- check_number(learning_rate, "learning_rate", 0, above = TRUE)
  kl_weight <- check_number(kl_weight, "kl_weight", 0)
  perceptual_weight <- check_number(perceptual_weight, "perceptual_weight", 0)
  vgg_weights <- check_string(vgg_weights, "vgg_weights", null_ok = TRUE)
  if (!is.null(vgg_weights) && vgg_weights != "imagenet" && !file.exists(vgg_weights)) {
    kerasdit_error(sprintf(paste(
      "'vgg_weights' must be \"imagenet\" (downloaded once), the path of a VGG19 .h5 file or NULL (random);",
      "no file '%s'."), vgg_weights), script_message = sprintf("No VGG19 weights file '%s' (--vgg_weights).",
                                                              vgg_weights))
  }
  verbose <- check_verbose(verbose)
  data <- image_dataset(data, batch_size = batch_size, ...)
  check_image_shape(data, vae$in_channels, what = sprintf("the KL-VAE (in_channels = %d)", vae$in_channels))
  keras <- reticulate::import("keras")
  perceptual <- if (perceptual_weight > 0) perceptual_loss(kd, vgg_weights)
  trainer <- py_call(kd$tasks$VAETrainer(vae, perceptual_weight = perceptual_weight, kl_weight = kl_weight,
                                         perceptual = perceptual))
  trainer$compile(optimizer = keras$optimizers$Adam(learning_rate))
  history <- py_call(trainer$fit(data, epochs = epochs, verbose = verbose))
  invisible(add_history(vae, history))
}

# The VGG19 perceptual loss; failing to download the ImageNet weights is an error naming the way out, in R
# arguments and in the scripts' flags.
perceptual_loss <- function(kd, vgg_weights) {
  tryCatch(kd$losses$VGGPerceptualLoss(weights = vgg_weights), error = function(e) {
    message <- python_message(e)
    if (!identical(vgg_weights, "imagenet") || !startsWith(message, "FileNotFoundError")) {
      kerasdit_error(message, class = "kerasdit_python_error")
    }
    reason <- sub("^FileNotFoundError: ", "", message)
    reason <- sub("\\. They download from.*$", ".", reason)
    kerasdit_error(
      sprintf(paste("%s Without network, train without the perceptual loss (perceptual_weight = 0) or give a copy",
                    "of the weights file (vgg_weights = \"/path/to/%s\")."), reason, VGG_FILE),
      class = "kerasdit_download_error",
      script_message = sprintf(paste("%s Without network, run the script with --perceptual_weight 0, or with",
                                     "--vgg_weights PATH (a copy of %s, e.g. from ~/.keras/models/ on a machine",
                                     "that has it)."), reason, VGG_FILE))
  })
}

VGG_FILE <- "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"

#' Measure the latent scale factor
#'
#' `1 / sd` of the autoencoder's latents over the data, so that diffusion sees
#' latents of unit variance. The factor is stored in the VAE (and saved with
#' it), and [diffusion_model()] picks it up.
#'
#' @param vae a trained [kl_vae()].
#' @param data images, see [image_dataset()].
#' @param batch_size images per batch.
#' @param max_batches stop after this many batches (`NULL`: all).
#' @param verbose 1 shows a progress bar.
#' @param ... more arguments of [image_dataset()].
#' @return The scale factor (a number).
#' @export
compute_scale_factor <- function(vae, data, batch_size = 32, max_batches = NULL, verbose = 1, ...) {
  kd <- keras_dit()
  vae <- check_model(vae, "vae", "vae")
  max_batches <- check_number(max_batches, "max_batches", 1, whole = TRUE, null_ok = TRUE)
  verbose <- check_number(verbose, "verbose", 0, 1, whole = TRUE)
  data <- image_dataset(data, batch_size = batch_size, shuffle = FALSE, ...)
  check_image_shape(data, vae$in_channels, what = sprintf("the KL-VAE (in_channels = %d)", vae$in_channels))
  py_call(kd$compute_scale_factor(vae, data, max_batches = max_batches, verbose = verbose))
}

#' Train a diffusion model
#'
#' Compiles the model with AdamW (with an EMA of the weights, used for
#' sampling) unless it is already compiled, then fits it.
#'
#' @param model a [diffusion_model()].
#' @param data training images (with labels for a conditional model), see
#'   [image_dataset()].
#' @param labels labels of an image array.
#' @param epochs passes over the data.
#' @param batch_size images per batch.
#' @param learning_rate AdamW's learning rate.
#' @param lr_schedule the learning rate over the run: `"constant"`, or
#'   `"cosine"` (decayed from `learning_rate` to 0 over the `epochs` of this
#'   call, as the command line's `train.lr_schedule`). It is part of the
#'   optimizer, so it applies to the call that compiles the model.
#' @param ema keep an exponential moving average of the weights for sampling.
#' @param verbose Keras progress output: 0 silent, 1 progress bar, 2 one line
#'   per epoch.
#' @param ... more arguments of [image_dataset()].
#' @return The trained `model`, invisibly; its losses per epoch are in
#'   [training_history()].
#' @export
train_dit <- function(model, data, labels = NULL, epochs = 1, batch_size = 16, learning_rate = 1e-4,
                      lr_schedule = "constant", ema = TRUE, verbose = 1, ...) {
  model <- check_model(model, "model", "diffusion_model")
  epochs <- check_number(epochs, "epochs", 1, whole = TRUE)
  learning_rate <- check_number(learning_rate, "learning_rate", 0, above = TRUE)
  lr_schedule <- check_string(lr_schedule, "lr_schedule", c("constant", "cosine"))
  if (lr_schedule != "constant" && isTRUE(model$compiled)) {
    input_error("This model is already compiled (by an earlier train_dit() call), and its optimizer keeps its ",
                "learning rate: lr_schedule = \"", lr_schedule, "\" applies to the call that compiles the model.")
  }
  ema <- check_flag(ema, "ema")
  verbose <- check_verbose(verbose)
  data <- image_dataset(data, labels = labels, batch_size = batch_size, ...)
  shape <- output_shape(model)
  check_image_shape(data, shape[3], shape[1], what = "the diffusion model")
  if (isTRUE(model$is_conditional) && is.null(data$condition_kind)) {
    input_error("This diffusion model is conditional: give labels with the images (labels = ...), ",
                "or a data set that has them.")
  }
  if (!isTRUE(model$compiled)) {
    keras <- reticulate::import("keras")
    if (lr_schedule == "cosine") {
      steps <- as.integer(epochs * reticulate::py_len(data))
      learning_rate <- keras$optimizers$schedules$CosineDecay(learning_rate, decay_steps = steps)
    }
    model$compile(optimizer = keras$optimizers$AdamW(learning_rate, use_ema = ema))
  }
  history <- py_call(model$fit(data, epochs = epochs, verbose = verbose))
  invisible(add_history(model, history))
}

# Append a Keras History's epochs to the model's R history (see training_history()).
add_history <- function(model, history) {
  metrics <- lapply(history$history, function(v) as.numeric(unlist(v)))
  previous <- training_history(model)
  first <- if (is.null(previous)) 1L else max(previous$epoch) + 1L
  frame <- data.frame(epoch = first - 1L + seq_along(metrics[[1]]), metrics, check.names = FALSE)
  if (!is.null(previous)) frame <- rbind(previous[, intersect(names(previous), names(frame)), drop = FALSE],
                                         frame[, intersect(names(previous), names(frame)), drop = FALSE])
  state$histories[[history_key(model)]] <- structure(frame, class = c("kerasdit_history", "data.frame"))
  model
}

# Histories are kept in R, by the Python object's identity: every R reference to the model sees the same one.
history_key <- function(model) as.character(reticulate::py_id(model))

#' Training history
#'
#' The losses of every epoch [train_dit()] or [train_vae()] ran on this model
#' in this R session, as a data frame with an `epoch` column and one column
#' per metric (`loss`, ...); `plot()` draws the loss curve.
#'
#' @param model a model trained with [train_dit()] or [train_vae()].
#' @return A data frame of class `kerasdit_history`, or `NULL` before training.
#' @examples
#' \dontrun{
#' model <- train_dit(model, "digits", epochs = 5)
#' plot(training_history(model))
#' }
#' @export
training_history <- function(model) {
  if (is.null(model_kind(model))) {
    kerasdit_error(sprintf("'model' must be a kerasdit model, got %s.", show_value(model)))
  }
  state$histories[[history_key(model)]]
}

#' @rdname training_history
#' @param x a `kerasdit_history`.
#' @param metric the column to plot.
#' @param ... more arguments of [graphics::plot()].
#' @export
plot.kerasdit_history <- function(x, metric = "loss", ...) {
  metric <- check_string(metric, "metric", setdiff(names(x), "epoch"))
  graphics::plot(x$epoch, x[[metric]], type = "o", pch = 20, xlab = "epoch", ylab = metric, ...)
  invisible(x)
}

describe_history <- function(history) {
  if (is.null(history)) return("  not trained in this session")
  sprintf("  trained %d epochs in this session; last loss %.4g", nrow(history), utils::tail(history$loss, 1))
}

#' Generate images
#'
#' Samples from a trained [diffusion_model()] with classifier-free guidance
#' and, optionally, a negative condition that replaces the unconditional branch.
#'
#' @param model a trained diffusion model.
#' @param condition class labels, one per image (0-based), or a matrix of
#'   conditions (one row per image: multi-hot tags or parameter vectors) for
#'   backbones built with such a conditioner; `NULL` for an unconditional model.
#' @param negative_condition labels (or rows) to steer away from, one per image.
#' @param num_images images to draw from an unconditional model.
#' @param num_steps sampler steps.
#' @param sampler `"ddim"`, `"ddpm"`, `"euler"`, `"heun"`, `"dpm_solver"` or
#'   `"unipc"`; `NULL` takes DDIM for Gaussian diffusion and Euler for rectified
#'   flow.
#' @param guidance_scale classifier-free guidance scale (1: no guidance).
#' @param seed seed: the same seed gives the same images.
#' @return An integer array (batch, height, width, channels) in 0..255.
#' @export
generate_images <- function(model, condition = NULL, negative_condition = NULL, num_images = NULL, num_steps = 50,
                            sampler = NULL, guidance_scale = 1, seed = NULL) {
  model <- check_model(model, "model", "diffusion_model")
  num_images <- check_number(num_images, "num_images", 1, whole = TRUE, null_ok = TRUE)
  num_steps <- check_number(num_steps, "num_steps", 1, whole = TRUE)
  sampler <- check_string(sampler, "sampler", SAMPLERS, null_ok = TRUE)
  guidance_scale <- check_number(guidance_scale, "guidance_scale", 0)
  seed <- check_number(seed, "seed", whole = TRUE, null_ok = TRUE)
  conditional <- isTRUE(model$is_conditional)
  if (conditional && is.null(condition)) {
    kerasdit_error("This model is conditional: give 'condition' (one class label per image, 0-based).")
  }
  if (!conditional && !is.null(condition)) {
    kerasdit_error("This model is unconditional: drop 'condition' and give 'num_images'.")
  }
  if (!conditional && is.null(num_images)) kerasdit_error("An unconditional model needs 'num_images'.")
  num_classes <- if (reticulate::py_has_attr(model$backbone, "num_classes")) model$backbone$num_classes
  as_condition <- function(x, name) {
    if (is.null(x)) return(NULL)
    if (is.matrix(x) && is.numeric(x)) return(reticulate::np_array(x, "float32"))
    reticulate::np_array(as_labels(x, num_classes, allow_null = TRUE, what = name), "int32")
  }
  condition_array <- as_condition(condition, "condition")
  negative <- as_condition(negative_condition, "negative_condition")
  if (!is.null(negative) && NROW(negative_condition) != NROW(condition)) {
    kerasdit_error(sprintf("'negative_condition' must have one entry per image (%d), got %d.", NROW(condition),
                           NROW(negative_condition)))
  }
  images <- py_call(model$generate(
    condition = condition_array, negative_condition = negative, num_steps = num_steps, sampler = sampler,
    guidance_scale = guidance_scale, seed = seed, num_images = num_images
  ))
  storage.mode(images) <- "integer"
  images
}

SAMPLERS <- c("ddim", "ddpm", "euler", "heun", "dpm_solver", "unipc")
