# Checks and conversions of R inputs at the boundary with Python. R arrays keep their indexing when they
# cross (reticulate makes x[b, h, w, c] in R the same element as x[b, h, w, c] in NumPy), so an image batch
# is an R array of dim c(batch, height, width, channels) on both sides.

# Whole numbers -> integer, with an error naming the argument otherwise.
as_whole <- function(x, name) {
  if (is.null(x)) return(NULL)
  if (!is.numeric(x) || anyNA(x) || any(x != round(x))) {
    input_error(sprintf("'%s' must be whole numbers, got %s.", name, show_value(x)))
  }
  as.integer(x)
}

# A named list of constructor arguments with the integer ones made integer (Python shape arguments must be int).
py_args <- function(args, integers) {
  args <- args[!vapply(args, is.null, logical(1))]
  for (name in intersect(names(args), integers)) args[[name]] <- as_whole(args[[name]], name)
  args
}

#' Check and normalise a batch of images
#'
#' Images are R arrays of dim `c(batch, height, width, channels)`: integers in
#' 0..255 (stored as integer or as whole doubles above 1) or numbers in
#' \[-1, 1\]. A single image (height, width, channels) or a grayscale batch
#' (batch, height, width) is given the missing dimension.
#'
#' @param images an array.
#' @param what the argument's name, for error messages.
#' @return A 4-d array; integer storage for 0..255 images, double for \[-1, 1\].
#' @examples
#' dim(as_image_array(array(0L, c(8, 8, 3))))  # 1 8 8 3
#' @export
as_image_array <- function(images, what = "images") {
  if (is.data.frame(images) || !(is.numeric(images) || is.raw(images)) || is.null(dim(images))) {
    input_error(sprintf(
      "'%s' must be a numeric array of dim c(batch, height, width, channels), got %s. Build one with array(), ",
      what, if (is.data.frame(images)) "a data.frame" else paste0("a ", class(images)[1], " without dim")),
      "e.g. array(x, dim = c(n, 32, 32, 3)).")
  }
  if (is.raw(images)) images <- array(as.integer(images), dim(images))
  d <- dim(images)
  if (length(d) == 3) {
    # (H, W, C) with C in 1..4 is one image; otherwise (B, H, W) grayscale.
    images <- if (d[3] %in% c(1, 3, 4)) array(images, c(1, d)) else array(images, c(d, 1))
  } else if (length(d) != 4) {
    input_error(sprintf("'%s' must have 4 dimensions (batch, height, width, channels), got dim %s.",
                        what, paste(d, collapse = " x ")))
  }
  if (anyNA(images)) input_error(sprintf("'%s' contains NA values.", what))
  whole <- is.integer(images) || (max(images) > 1 && all(images == round(images)))
  if (whole) {
    if (min(images) < 0 || max(images) > 255) {
      input_error(sprintf("Integer images ('%s') must be in 0..255, got values in [%s, %s].",
                          what, min(images), max(images)))
    }
    storage.mode(images) <- "integer"
  } else if (min(images) < -1 || max(images) > 1) {
    input_error(sprintf(paste(
      "'%s' has values in [%.3g, %.3g]: give integers in 0..255 or numbers in [-1, 1]",
      "(e.g. x * 2 - 1 for values in [0, 1])."), what, min(images), max(images)))
  }
  images
}

# R images -> NumPy: uint8 for 0..255, float32 for [-1, 1].
images_to_numpy <- function(images, what = "images") {
  images <- as_image_array(images, what)
  reticulate::np_array(images, dtype = if (is.integer(images)) "uint8" else "float32")
}

#' Check class labels
#'
#' Labels are whole numbers, 0-based as in Python (label `0` is the first
#' class); a factor is taken as its level index minus one.
#'
#' @param labels a numeric vector or a factor.
#' @param num_classes optional number of classes; labels must be below it
#'   (`num_classes` itself is allowed when `allow_null`: the null class).
#' @param allow_null allow the null label `num_classes`.
#' @param what the argument's name, for error messages.
#' @return An integer vector.
#' @examples
#' as_labels(c(0, 3, 9), num_classes = 10)
#' @export
as_labels <- function(labels, num_classes = NULL, allow_null = FALSE, what = "labels") {
  if (is.factor(labels)) labels <- as.integer(labels) - 1L
  if (is.data.frame(labels) || is.list(labels) || !is.numeric(labels) || length(labels) == 0 ||
      anyNA(labels) || any(labels != round(labels))) {
    input_error("'", what, "' must be a non-empty vector of whole numbers (0-based class indices), got ",
                show_value(labels), ".")
  }
  labels <- as.integer(labels)
  if (!is.null(num_classes)) {
    highest <- num_classes - !allow_null
    if (min(labels) < 0 || max(labels) > highest) {
      input_error(sprintf("'%s' must be in 0..%d (%d classes%s), got values in [%d, %d].", what, highest,
                          num_classes, if (allow_null) sprintf(", %d = null class", num_classes) else "",
                          min(labels), max(labels)))
    }
  }
  labels
}

#' Tensors to R arrays
#'
#' Converts a backend tensor (TensorFlow or JAX) or NumPy array to an R array
#' with the same indexing.
#'
#' @param x a tensor.
#' @return An R array.
#' @export
to_array <- function(x) {
  if (!inherits(x, "python.builtin.object")) return(x)
  reticulate::py_to_r(reticulate::import("keras", convert = FALSE)$ops$convert_to_numpy(x))
}
