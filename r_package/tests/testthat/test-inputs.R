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

test_that("image grids place image b at row (b - 1) %/% ncol, column (b - 1) %% ncol, with white padding", {
  images <- array(0L, c(3, 2, 2, 1))
  images[2, , , 1] <- 7L
  grid <- image_grid(images, ncol = 2, padding = 1)
  expect_identical(dim(grid), c(5L, 5L, 1L))
  expect_true(all(grid[1:2, 4:5, 1] == 7L))
  expect_true(all(grid[4:5, 1:2, 1] == 0L))
  expect_true(all(grid[3, , 1] == 255L) && all(grid[, 3, 1] == 255L))  # padding between tiles is white
  expect_true(all(grid[4:5, 4:5, 1] == 255L))                           # and so is the missing fourth tile
  expect_identical(attr(grid, "layout"), list(nrow = 2, ncol = 2L, padding = 1L))
  expect_true(all(image_grid(array(-1, c(2, 2, 2, 1)), ncol = 2)[, 3:4, 1] == 1))  # [-1, 1] images: white is 1
  expect_error(image_grid(images, ncol = 0), "'ncol' must be a whole number >= 1, got 0", class = "kerasdit_error")
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
  expect_identical(dim(png::readPNG(grid)), c(4L, 12L, 3L))
  expect_error(save_images(images, 3), "'path' must be a single string, got 3", class = "kerasdit_error")
})

test_that("plot_images draws the grid that save_images writes", {
  images <- array(100L, c(5, 4, 6, 1))
  file <- tempfile(fileext = ".png")
  saved <- tempfile(fileext = ".png")
  grDevices::png(file)
  out <- plot_images(images, ncol = 3, titles = letters[1:5])
  grDevices::dev.off()
  expect_true(file.exists(file))
  expect_identical(dim(out), c(5L, 4L, 6L, 1L))
  grid <- image_grid(images, ncol = 3)
  expect_identical(attr(out, "layout"), attr(grid, "layout"))
  save_images(images, saved, ncol = 3)
  expect_identical(dim(png::readPNG(saved))[1:2], dim(grid)[1:2])
  expect_error(plot_images(images, titles = "a"), "'titles' must have one title per image \\(5\\), got 1",
               class = "kerasdit_error")
})

test_that("script options override defaults with the default's type", {
  defaults <- list(epochs = 10, data = "digits", ema = TRUE, vae = "outputs/vae.keras")
  args <- script_args(defaults, c("--epochs", "2", "--data=my_images", "--ema", "false", "--vae", "none"))
  expect_identical(args$epochs, 2)
  expect_identical(args$data, "my_images")
  expect_false(args$ema)
  expect_null(args$vae)
  expect_true("vae" %in% names(args))
  expect_error(script_args(defaults, c("--epoch", "2")), "Unknown option --epoch", class = "kerasdit_error")
  expect_error(script_args(defaults, c("--epochs", "two")), "takes a number")
  out <- capture.output(help <- script_args(defaults, "--help"))
  expect_null(help)
  expect_match(paste(out, collapse = "\n"), "--epochs +10")
})

test_that("the requirements install the shipped source with the backends' extras and the NumPy pin", {
  expect_identical(kerasdit_requirements("jax", package = "src", reticulate_version = "1.28"),
                   c("src[jax]", "numpy>=1.26,<2"))
  expect_identical(kerasdit_requirements(c("jax", "tensorflow"), package = "src", reticulate_version = "1.38.0"),
                   c("src[jax,tensorflow]", "numpy>=1.26"))
  shipped <- sub("\\[.*$", "", kerasdit_requirements("jax")[1])
  expect_true(file.exists(file.path(shipped, "pyproject.toml")) && dir.exists(file.path(shipped, "keras_dit")))
  expect_error(kerasdit_requirements("pytorch"), "'backend' must be one or more of \"tensorflow\" and \"jax\"",
               class = "kerasdit_error")
  expect_error(use_backend("tensorflw"), "'backend' must be one of \"tensorflow\", \"jax\", got \"tensorflw\"",
               class = "kerasdit_error")
  expect_error(use_backend(c("jax", "tensorflow")), "'backend' must be one of", class = "kerasdit_error")
})

test_that("install_kerasdit takes only a source folder, wheel or sdist, never a package name", {
  old_root <- Sys.getenv("WORKON_HOME")
  Sys.setenv(WORKON_HOME = tempfile())
  on.exit(Sys.setenv(WORKON_HOME = old_root))
  expect_error(install_kerasdit(package = "keras-dit"), "'package' must be the keras_dit Python package as a folder",
               class = "kerasdit_error")
  expect_error(install_kerasdit(backend = "torch"), "'backend' must be one or more of", class = "kerasdit_error")
  expect_false(dir.exists(Sys.getenv("WORKON_HOME")))
})

test_that("a failed install leaves no environment behind, and puts an existing one back", {
  skip_if(Sys.which("python3") == "", "no python3 to create a virtualenv with")
  root <- tempfile()
  old_root <- Sys.getenv("WORKON_HOME")
  Sys.setenv(WORKON_HOME = root)
  on.exit(Sys.setenv(WORKON_HOME = old_root))
  # A source folder that pip cannot build without an index: the install fails after the environment was made.
  source <- tempfile()
  dir.create(source)
  writeLines(c("[build-system]", 'requires = ["no-such-build-backend"]'), file.path(source, "pyproject.toml"))
  fail <- function() {
    suppressMessages(capture.output(error <- tryCatch(
      install_kerasdit("r-kerasdit-test", backend = "jax", package = source, pip_options = "--no-index"),
      error = identity)))
    error
  }
  error <- fail()
  expect_s3_class(error, "kerasdit_install_error")
  expect_match(conditionMessage(error), "no environment was left behind")
  expect_false(file.exists(file.path(root, "r-kerasdit-test")))
  # An existing environment is moved aside while the new one is built, and comes back intact.
  existing <- file.path(root, "r-kerasdit-test")
  dir.create(existing, recursive = TRUE)
  writeLines("home = /usr/bin", file.path(existing, "pyvenv.cfg"))
  error <- fail()
  expect_match(conditionMessage(error), "the old environment is back")
  expect_identical(readLines(file.path(existing, "pyvenv.cfg")), "home = /usr/bin")
  expect_identical(list.files(root), "r-kerasdit-test")
})

test_that("errors name the kerasdit call the user made", {
  error <- tryCatch(image_grid(array(0L, c(2, 2, 2, 1)), padding = -1), error = identity)
  expect_s3_class(error, "kerasdit_error")
  expect_identical(conditionCall(error), quote(image_grid(array(0L, c(2, 2, 2, 1)), padding = -1)))
  expect_match(conditionMessage(error), "^'padding' must be a whole number >= 0, got -1\\.$")
})
