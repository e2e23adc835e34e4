# The Keras backend of the test run comes from KERAS_BACKEND (tensorflow when unset); it must be chosen before
# anything starts Python.
backend_under_test <- Sys.getenv("KERAS_BACKEND", "tensorflow")
if (backend_under_test %in% c("tensorflow", "jax")) use_backend(backend_under_test)

skip_if_no_kerasdit <- function() {
  available <- is_kerasdit_available()
  if (!available) skip(attr(available, "reason"))
}

# The synthetic set's first classes drawn in R: flat bright and flat dark 8 x 8 grayscale images, 0..255.
toy_images <- function(n = 16, size = 8) {
  labels <- rep(0:1, length.out = n)
  images <- array(0L, c(n, size, size, 1))
  for (i in seq_len(n)) images[i, , , 1] <- if (labels[i] == 0) 200L else 40L
  list(images = images, labels = labels)
}

tiny_dit <- function(num_classes = 2) {
  dit(input_size = 8, patch_size = 4, in_channels = 1, hidden_size = 16, depth = 1, num_heads = 2,
      num_classes = num_classes, seed = 0)
}
