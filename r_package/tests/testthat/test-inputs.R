# Pure R: input checks, image helpers and script options (no Python).

test_that("image arrays keep (batch, height, width, channels) and reject other inputs", {
  x <- array(0L, c(2, 8, 6, 3))
  expect_identical(dim(as_image_array(x)), c(2L, 8L, 6L, 3L))
  expect_identical(dim(as_image_array(array(0L, c(8, 6, 3)))), c(1L, 8L, 6L, 3L))
  expect_identical(dim(as_image_array(array(0L, c(5, 8, 6)))), c(5L, 8L, 6L, 1L))
  expect_type(as_image_array(array(c(0, 255), c(2, 4, 4, 1))), "integer")
  expect_type(as_image_array(array(c(-1, 0.5), c(2, 4, 4, 1))), "double")
  expect_error(as_image_array(data.frame(a = 1:3)), "data.frame", class = "kerasdit_error")
  expect_error(as_image_array(1:10), "array", class = "kerasdit_error")
  expect_error(as_image_array(array(0, c(2, 2))), "4 dimensions", class = "kerasdit_error")
  expect_error(as_image_array(array(300L, c(1, 2, 2, 1))), "0..255", class = "kerasdit_error")
  expect_error(as_image_array(array(1.5, c(1, 2, 2, 1))), "\\[-1, 1\\]", class = "kerasdit_error")
})

test_that("labels must be whole numbers in range", {
  expect_identical(as_labels(c(0, 2, 1)), c(0L, 2L, 1L))
  expect_identical(as_labels(factor(c("b", "a", "b"))), c(1L, 0L, 1L))
  expect_error(as_labels(c(0.5, 1)), "whole numbers", class = "kerasdit_error")
  expect_error(as_labels("cat"), "whole numbers", class = "kerasdit_error")
  expect_error(as_labels(c(0, 10), num_classes = 10), "0..9", class = "kerasdit_error")
  expect_identical(as_labels(10, num_classes = 10, allow_null = TRUE), 10L)
})

test_that("image grids place image b at row (b - 1) %/% ncol, column (b - 1) %% ncol", {
  images <- array(0L, c(3, 2, 2, 1))
  images[2, , , 1] <- 7L
  grid <- image_grid(images, ncol = 2, padding = 1)
  expect_identical(dim(grid), c(5L, 5L, 1L))
  expect_true(all(grid[1:2, 4:5, 1] == 7L))
  expect_true(all(grid[4:5, 1:2, 1] == 0L))
})

test_that("save_images writes PNGs that read back as the same pixels", {
  images <- array(sample(0:255, 2 * 4 * 5 * 3, replace = TRUE), c(2, 4, 5, 3))
  dir <- tempfile()
  paths <- attr(save_images(images, dir), "paths")
  expect_length(paths, 2)
  back <- png::readPNG(paths[2])
  expect_identical(dim(back), c(4L, 5L, 3L))
  expect_equal(round(back * 255), images[2, , , ] * 1.0, ignore_attr = TRUE)
  grid <- tempfile(fileext = ".png")
  save_images(images, grid, ncol = 2)
  expect_identical(dim(png::readPNG(grid)), c(4L, 11L, 3L))
})

test_that("plot_images draws on a device and returns its input", {
  file <- tempfile(fileext = ".png")
  grDevices::png(file)
  out <- plot_images(array(100L, c(3, 4, 4, 1)), titles = c("a", "b", "c"))
  grDevices::dev.off()
  expect_true(file.exists(file))
  expect_identical(dim(out), c(3L, 4L, 4L, 1L))
  expect_error(plot_images(array(100L, c(3, 4, 4, 1)), titles = "a"), "titles")
})

test_that("script options override defaults with the default's type", {
  defaults <- list(epochs = 10, data = "digits", ema = TRUE, vae = "outputs/vae.keras")
  args <- script_args(defaults, c("--epochs", "2", "--data=my_images", "--ema", "false", "--vae", "none"))
  expect_identical(args$epochs, 2)
  expect_identical(args$data, "my_images")
  expect_false(args$ema)
  expect_null(args$vae)
  expect_true("vae" %in% names(args))
  expect_error(script_args(defaults, c("--epoch", "2")), "Unknown option --epoch")
  expect_error(script_args(defaults, c("--epochs", "two")), "takes a number")
  out <- capture.output(help <- script_args(defaults, "--help"))
  expect_null(help)
  expect_match(paste(out, collapse = "\n"), "--epochs +10")
})

test_that("the NumPy pin follows the reticulate version and backends are checked", {
  expect_identical(kerasdit_requirements("jax", reticulate_version = "1.28"), c("keras-dit[jax]", "numpy>=1.26,<2"))
  expect_identical(kerasdit_requirements("tensorflow", reticulate_version = "1.38.0")[2], "numpy>=1.26")
  expect_error(kerasdit_requirements("pytorch"), "should be one of")
  expect_error(use_backend("tensorflw"), "Unknown Keras backend \"tensorflw\"")
  expect_error(use_backend(c("jax", "tensorflow")), "Unknown Keras backend")
})
