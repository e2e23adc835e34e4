# Through reticulate: array interchange, models, training, sampling, errors. Skipped without Python keras_dit.

test_that("arrays cross to NumPy and back with (batch, height, width, channels) indexing", {
  skip_if_no_kerasdit()
  x <- array(seq_len(2 * 3 * 4 * 5), c(2, 3, 4, 5))
  np <- reticulate::r_to_py(x)
  expect_identical(unlist(reticulate::py_to_r(np$shape)), c(2L, 3L, 4L, 5L))
  expect_identical(reticulate::py_to_r(np$item(1L, 2L, 0L, 3L)), x[2, 3, 1, 4])
  expect_identical(reticulate::py_to_r(reticulate::r_to_py(x)), x)
  # Python reduces over (height, width, channels) per image, as R does over dims 2:4.
  per_image <- reticulate::py_to_r(np$sum(axis = reticulate::tuple(1L, 2L, 3L)))
  expect_equal(as.numeric(per_image), apply(x, 1, sum))
  # uint8 images come back as integers with the same layout.
  u8 <- keras_dit()$data$to_uint8(reticulate::np_array(array(c(-1, 1), c(2, 2, 2, 1)), "float32"))
  expect_identical(dim(u8), c(2L, 2L, 2L, 1L))
  expect_identical(u8[2, 1, 1, 1], 255L)
})

test_that("a tiny DiT trains, generates with CFG, a negative condition, DDIM and DDPM, and reloads", {
  skip_if_no_kerasdit()
  toy <- toy_images(16)
  model <- tiny_dit() |> diffusion_model("gaussian", seed = 0)
  # A high rate and no EMA, so that a few seconds of training make the condition show in the samples.
  trained <- train_dit(model, toy$images, toy$labels, epochs = 20, batch_size = 8, learning_rate = 1e-2, ema = FALSE,
                       verbose = 0)
  expect_identical(trained, model)
  loss <- unlist(model$history$history$loss)
  expect_length(loss, 20)
  expect_lt(mean(utils::tail(loss, 5)), mean(utils::head(loss, 5)))
  images <- generate_images(model, c(0, 1, 1), num_steps = 3, guidance_scale = 2, seed = 1)
  expect_identical(dim(images), c(3L, 8L, 8L, 1L))
  expect_type(images, "integer")
  expect_true(all(images >= 0 & images <= 255))
  expect_identical(generate_images(model, c(0, 1, 1), num_steps = 3, guidance_scale = 2, seed = 1), images)
  # A strong guidance scale magnifies the difference between the null and the negative unconditional branch.
  plain <- generate_images(model, c(0, 1, 1), num_steps = 3, guidance_scale = 20, seed = 1)
  negative <- generate_images(model, c(0, 1, 1), negative_condition = c(1, 0, 0), num_steps = 3,
                              guidance_scale = 20, seed = 1)
  expect_false(identical(negative, plain))
  ddpm <- generate_images(model, c(0, 1), num_steps = 3, sampler = "ddpm", seed = 1)
  expect_identical(dim(ddpm), c(2L, 8L, 8L, 1L))
  path <- file.path(tempfile(), "dit.keras")
  save_model(model, path)
  reloaded <- load_model(path)
  expect_identical(generate_images(reloaded, c(0, 1, 1), num_steps = 3, guidance_scale = 2, seed = 1), images)
})

test_that("a tiny KL-VAE trains and gets a scale factor that a latent diffusion model takes", {
  skip_if_no_kerasdit()
  toy <- toy_images(16, size = 16)
  vae <- kl_vae("kl-f4-tiny", in_channels = 1, seed = 0)
  train_vae(vae, toy, epochs = 1, batch_size = 8, perceptual_weight = 0, verbose = 0)
  factor <- compute_scale_factor(vae, toy$images, batch_size = 8, verbose = 0)
  expect_true(is.numeric(factor) && is.finite(factor) && factor > 0)
  expect_equal(as.numeric(vae$scale_factor), factor)
  model <- dit(input_size = 4, patch_size = 2, in_channels = 4, hidden_size = 16, depth = 1, num_heads = 2,
               num_classes = 2) |>
    diffusion_model("flow", autoencoder = vae)
  expect_equal(as.numeric(model$latent_factors()[[1]]), factor, tolerance = 1e-6)  # the VAE's (float32)
})

test_that("U-ViT and ReiMei backbones build from R arguments", {
  skip_if_no_kerasdit()
  u <- uvit(input_size = 8, patch_size = 4, in_channels = 1, hidden_size = 16, depth = 1, num_heads = 2,
            num_classes = 3)
  expect_s3_class(u, "keras_dit.models.uvit.UViT")
  r <- reimei(input_size = 8, patch_size = 4, in_channels = 1, hidden_size = 16, num_heads = 2,
              num_mixer_layers = 1, num_double_layers = 1, num_single_layers = 1, num_classes = 3)
  expect_s3_class(r, "keras_dit.models.reimei.ReiMei")
  model <- diffusion_model(u, "gaussian")
  expect_true(model$is_conditional)
})

test_that("bad inputs give R errors that name the problem", {
  skip_if_no_kerasdit()
  expect_error(dit(input_size = 7, patch_size = 2, in_channels = 1, hidden_size = 16, depth = 1, num_heads = 2),
               "not divisible by patch_size=2", class = "kerasdit_python_error")
  expect_error(dit(input_size = 8.5, patch_size = 2), "'input_size' must be whole numbers", class = "kerasdit_error")
  expect_error(kl_vae("kl-f5"), "Unknown KLVAE preset 'kl-f5'", class = "kerasdit_python_error")
  model <- tiny_dit() |> diffusion_model()
  toy <- toy_images(8)
  expect_error(train_dit(model, as.data.frame(toy$labels), toy$labels), "data.frame", class = "kerasdit_error")
  expect_error(train_dit(model, toy$images, batch_size = 8), "conditional: give labels", class = "kerasdit_error")
  expect_error(train_dit(model, toy$images, c(0.5, toy$labels[-1])), "whole numbers", class = "kerasdit_error")
  expect_error(train_dit(model, toy$images, toy$labels[-1]), "7 labels for 8 images", class = "kerasdit_error")
  expect_error(train_dit(model, toy$images, toy$labels, batch_size = 16), "larger than the data set",
               class = "kerasdit_python_error")
  expect_error(generate_images(model, c(0, 1.5)), "whole numbers", class = "kerasdit_error")
  expect_error(generate_images(model, c(0, 7)), "0..2", class = "kerasdit_error")
  expect_error(generate_images(model, c(0, 1), sampler = "ddim2"), "ddim2", class = "kerasdit_python_error")
  expect_error(image_dataset("no/such/folder"), "neither an existing folder", class = "kerasdit_error")
  expect_error(load_model(tempfile(fileext = ".keras")), "Train one first", class = "kerasdit_error")
})

test_that("use_backend cannot switch a running Keras to another backend", {
  skip_if_no_kerasdit()
  running <- backend()
  expect_identical(running, backend_under_test)
  other <- setdiff(c("tensorflow", "jax"), running)
  expect_error(use_backend(other), "already running with the .* backend")
  expect_identical(use_backend(running), running)
})
