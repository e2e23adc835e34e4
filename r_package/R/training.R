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
  if (is.character(data) && length(data) == 1 && !data %in% BUILTIN_DATA && !dir.exists(data)) {
    input_error(sprintf("Data '%s' is neither an existing folder of images nor a built-in data set (%s).",
                        data, paste(BUILTIN_DATA, collapse = ", ")))
  }
  kd <- keras_dit()
  options <- py_args(c(list(batch_size = batch_size, shuffle = shuffle, seed = seed), list(...)),
                     c(INTEGER_ARGS, "batch_size", "num_images", "channels", "image_size"))
  image_size <- as_whole(image_size, "image_size")
  if (is.character(data) && length(data) == 1) {
    if (data %in% BUILTIN_DATA) {
      if (!is.null(image_size)) options$image_size <- image_size
      return(py_call(do.call(kd$data$load_builtin, c(list(data), options))))
    }
    if (is.null(image_size)) input_error("Reading images from a folder needs 'image_size' (e.g. 32).")
    return(py_call(do.call(kd$data$ImageFolder, c(list(normalizePath(data), image_size, condition = condition),
                                                   options))))
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
#' @return The trained `vae`, invisibly. The losses are printed as it trains.
#' @export
train_vae <- function(vae, data, epochs = 1, batch_size = 16, learning_rate = 1e-4, kl_weight = 1e-6,
                      perceptual_weight = 0.1, vgg_weights = "imagenet", verbose = 1, ...) {
  kd <- keras_dit()
  data <- image_dataset(data, batch_size = batch_size, ...)
  keras <- reticulate::import("keras")
  perceptual <- if (perceptual_weight > 0) py_call(kd$losses$VGGPerceptualLoss(weights = vgg_weights))
  trainer <- py_call(kd$tasks$VAETrainer(vae, perceptual_weight = perceptual_weight, kl_weight = kl_weight,
                                         perceptual = perceptual))
  trainer$compile(optimizer = keras$optimizers$Adam(learning_rate))
  py_call(trainer$fit(data, epochs = as_whole(epochs, "epochs"), verbose = as_whole(verbose, "verbose")))
  invisible(vae)
}

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
  data <- image_dataset(data, batch_size = batch_size, shuffle = FALSE, ...)
  max_batches <- as_whole(max_batches, "max_batches")
  py_call(kd$compute_scale_factor(vae, data, max_batches = max_batches, verbose = as_whole(verbose, "verbose")))
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
#' @param ema keep an exponential moving average of the weights for sampling.
#' @param verbose Keras progress output: 0 silent, 1 progress bar, 2 one line
#'   per epoch.
#' @param ... more arguments of [image_dataset()].
#' @return The trained `model`, invisibly; the Keras history is in
#'   `model$history$history`.
#' @export
train_dit <- function(model, data, labels = NULL, epochs = 1, batch_size = 16, learning_rate = 1e-4, ema = TRUE,
                      verbose = 1, ...) {
  data <- image_dataset(data, labels = labels, batch_size = batch_size, ...)
  if (isTRUE(model$is_conditional) && is.null(data$condition_kind)) {
    input_error("This diffusion model is conditional: give labels with the images (labels = ...), ",
                "or a data set that has them.")
  }
  if (!isTRUE(model$compiled)) {
    keras <- reticulate::import("keras")
    model$compile(optimizer = keras$optimizers$AdamW(learning_rate, use_ema = ema))
  }
  py_call(model$fit(data, epochs = as_whole(epochs, "epochs"), verbose = as_whole(verbose, "verbose")))
  invisible(model)
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
#' @param sampler `"ddim"`, `"ddpm"`, `"euler"` or `"heun"`; `NULL` takes DDIM
#'   for Gaussian diffusion and Euler for rectified flow.
#' @param guidance_scale classifier-free guidance scale (1: no guidance).
#' @param seed seed: the same seed gives the same images.
#' @return An integer array (batch, height, width, channels) in 0..255.
#' @export
generate_images <- function(model, condition = NULL, negative_condition = NULL, num_images = NULL, num_steps = 50,
                            sampler = NULL, guidance_scale = 1, seed = NULL) {
  kd <- keras_dit()
  as_condition <- function(x, what) {
    if (is.null(x)) return(NULL)
    if (is.matrix(x) && is.numeric(x)) return(reticulate::np_array(x, "float32"))
    num_classes <- if (reticulate::py_has_attr(model$backbone, "num_classes")) model$backbone$num_classes
    labels <- as_labels(x, num_classes, allow_null = TRUE)
    reticulate::np_array(labels, "int32")
  }
  if (!is.null(sampler) && !(is.character(sampler) && length(sampler) == 1)) {
    input_error("'sampler' must be one of \"ddim\", \"ddpm\", \"euler\", \"heun\" or NULL.")
  }
  images <- py_call(model$generate(
    condition = as_condition(condition), negative_condition = as_condition(negative_condition),
    num_steps = as_whole(num_steps, "num_steps"), sampler = sampler, guidance_scale = guidance_scale,
    seed = as_whole(seed, "seed"), num_images = as_whole(num_images, "num_images")
  ))
  storage.mode(images) <- "integer"
  images
}
