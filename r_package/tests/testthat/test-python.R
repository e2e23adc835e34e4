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

test_that("lr_schedule = 'cosine' decays the learning rate to 0 over the epochs of the call that compiles", {
  skip_if_no_kerasdit()
  toy <- toy_images(8)
  model <- tiny_dit() |> diffusion_model("flow", seed = 0)
  train_dit(model, toy$images, toy$labels, epochs = 3, batch_size = 4, learning_rate = 1e-3, lr_schedule = "cosine",
            verbose = 0)
  optimizer <- model$optimizer
  expect_equal(as.numeric(to_array(optimizer$iterations)), 6)  # 3 epochs of 2 batches
  expect_equal(as.numeric(to_array(optimizer$learning_rate)), 0, tolerance = 1e-9)
  expect_equal(as.numeric(to_array(optimizer$`_learning_rate`(2L))), 1e-3 * (1 + cos(pi / 3)) / 2,
               tolerance = 1e-6)  # CosineDecay at step 2 of 6
  expect_error(train_dit(model, toy$images, toy$labels, batch_size = 4, lr_schedule = "cosine", verbose = 0),
               "already compiled .* applies to the call that compiles the model", class = "kerasdit_error")
  expect_error(train_dit(model, toy$images, toy$labels, lr_schedule = "linear"),
               "'lr_schedule' must be one of \"constant\", \"cosine\"", class = "kerasdit_error")
})

test_that("a tiny DiT trains, generates with CFG, a negative condition, DDIM and DDPM, and reloads", {
  skip_if_no_kerasdit()
  toy <- toy_images(16)
  model <- tiny_dit() |> diffusion_model("gaussian", seed = 0)
  # A high rate and no EMA, so that a few seconds of training make the condition show in the samples.
  trained <- train_dit(model, toy$images, toy$labels, epochs = 20, batch_size = 8, learning_rate = 1e-2, ema = FALSE,
                       verbose = 0)
  expect_identical(trained, model)
  history <- training_history(model)
  expect_s3_class(history, c("kerasdit_history", "data.frame"))
  expect_identical(history$epoch, 1:20)
  loss <- history$loss
  expect_equal(loss, as.numeric(unlist(model$history$history$loss)))  # Keras' own record of the same fit
  expect_lt(mean(utils::tail(loss, 5)), mean(utils::head(loss, 5)))
  plotted <- tempfile(fileext = ".png")
  grDevices::png(plotted)
  plot(history)
  grDevices::dev.off()
  expect_gt(file.size(plotted), 0)
  expect_output(print(model), paste0("<kerasdit diffusion model> DiffusionModel: [0-9,]+ parameters, backend ",
                                     backend_under_test, ".*makes 8 x 8 x 1 images.*trained 20 epochs"))
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
  expect_s3_class(reloaded, "kerasdit_diffusion_model")
  expect_identical(generate_images(reloaded, c(0, 1, 1), num_steps = 3, guidance_scale = 2, seed = 1), images)
})

test_that("a tiny KL-VAE trains and gets a scale factor that a latent diffusion model takes", {
  skip_if_no_kerasdit()
  toy <- toy_images(16, size = 16)
  vae <- kl_vae("kl-f4-tiny", in_channels = 1, seed = 0)
  expect_output(print(vae), "<kerasdit vae> KLVAE: [0-9,]+ parameters.*1 -> 4 latent channels, downsampling x4")
  train_vae(vae, toy, epochs = 2, batch_size = 8, perceptual_weight = 0, verbose = 0)
  expect_true(all(c("epoch", "loss") %in% names(training_history(vae))))
  expect_identical(nrow(training_history(vae)), 2L)
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
  expect_s3_class(u, c("kerasdit_backbone", "kerasdit_model", "keras_dit.models.uvit.UViT"))
  expect_output(print(u), "<kerasdit backbone> UViT: [0-9,]+ parameters.*input_size 8, patch_size 4, in_channels 1")
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
  expect_error(train_dit(model, toy$images, c(0.5, toy$labels[-1])), "'labels' must be .* whole numbers",
               class = "kerasdit_error")
  expect_error(train_dit(model, toy$images, toy$labels[-1]), "7 labels for 8 images", class = "kerasdit_error")
  expect_error(train_dit(model, toy$images, toy$labels, batch_size = 16), "larger than the data set",
               class = "kerasdit_python_error")
  expect_error(train_dit("model", toy$images, toy$labels), "'model' must be a diffusion model",
               class = "kerasdit_error")
  expect_error(train_dit(model, toy$images, toy$labels, epochs = 0), "'epochs' must be a whole number >= 1",
               class = "kerasdit_error")
  expect_error(generate_images(model, c(0, 1.5)), "'condition' must be .* whole numbers", class = "kerasdit_error")
  expect_error(generate_images(model, c(0, 7)), "'condition' must be in 0..2", class = "kerasdit_error")
  expect_error(generate_images(model, c(0, 1), sampler = "ddim2"), "'sampler' must be one of \"ddim\"",
               class = "kerasdit_error")
  expect_error(generate_images(model), "conditional: give 'condition'", class = "kerasdit_error")
  expect_error(generate_images(model, c(0, 1), negative_condition = 1), "one entry per image \\(2\\), got 1",
               class = "kerasdit_error")
  expect_error(diffusion_model(model), "'backbone' must be a backbone from dit\\(\\)", class = "kerasdit_error")
  expect_error(diffusion_model(tiny_dit(), autoencoder = kl_vae("kl-f4-tiny", in_channels = 1)),
               "makes 4-channel latents but the backbone takes in_channels = 1", class = "kerasdit_error")
  expect_error(image_dataset("no/such/folder"), "neither an existing folder", class = "kerasdit_error")
  expect_error(load_model(tempfile(fileext = ".keras")), "Train one first", class = "kerasdit_error")
})

test_that("the inputs of the issue give classed errors naming the argument, and leave the model usable", {
  skip_if_no_kerasdit()
  model <- tiny_dit() |> diffusion_model(seed = 0)
  toy <- toy_images(8)
  rgb <- array(toy$images, c(8, 8, 8, 3))
  error <- tryCatch(train_dit(model, rgb, toy$labels, batch_size = 4), error = identity)
  expect_s3_class(error, "kerasdit_error")
  expect_match(conditionMessage(error), "'data' has 3-channel images but the diffusion model takes 1-channel images")
  expect_identical(conditionCall(error), quote(train_dit(model, rgb, toy$labels, batch_size = 4)))
  # The model was not touched: it trains and samples afterwards.
  train_dit(model, toy$images, toy$labels, batch_size = 4, verbose = 0)
  expect_identical(dim(generate_images(model, c(0, 1), num_steps = 2, seed = 0)), c(2L, 8L, 8L, 1L))
  expect_error(generate_images(model, c(0, 1), guidance_scale = "high"),
               "'guidance_scale' must be a number >= 0, got \"high\"", class = "kerasdit_error")
  expect_error(train_dit(model, toy$images, toy$labels, learning_rate = "fast"),
               "'learning_rate' must be a number > 0, got \"fast\"", class = "kerasdit_error")
  vae <- kl_vae("kl-f4-tiny", in_channels = 1)
  expect_error(train_vae(vae, toy, perceptual_weight = "none"),
               "'perceptual_weight' must be a number >= 0, got \"none\"", class = "kerasdit_error")
  expect_error(train_vae(vae, toy, vgg_weights = "no/such/vgg19.h5"), "no file 'no/such/vgg19.h5'",
               class = "kerasdit_error")
  expect_error(train_vae(vae, list(images = rgb, labels = toy$labels), batch_size = 4, perceptual_weight = 0),
               "3-channel images but the KL-VAE \\(in_channels = 1\\) takes 1-channel", class = "kerasdit_error")
  # A Python error is one line naming the user's call, and the model still works after it.
  error <- tryCatch(model |> train_dit(toy$images, toy$labels, batch_size = 16), error = identity)
  expect_s3_class(error, "kerasdit_python_error")
  expect_identical(conditionCall(error), quote(train_dit(model, toy$images, toy$labels, batch_size = 16)))
  expect_false(grepl("\n|py_call_impl|Detailed traceback|py_resolve_dots", conditionMessage(error)))
  expect_match(conditionMessage(error), "^ValueError: batch_size 16 is larger than the data set")
  train_dit(model, toy$images, toy$labels, batch_size = 4, verbose = 0)
  expect_identical(nrow(training_history(model)), 2L)
  # Corrupt model files: not a zip at all, and a zip cut short.
  garbage <- tempfile(fileext = ".keras")
  writeLines("not a model", garbage)
  expect_error(load_model(garbage), "is not a .keras model file \\(a zip archive\\): it is truncated, corrupt",
               class = "kerasdit_error")
  path <- tempfile(fileext = ".keras")
  save_model(model, path)
  bytes <- readBin(path, "raw", file.size(path))
  truncated <- tempfile(fileext = ".keras")
  writeBin(bytes[seq_len(length(bytes) %/% 2)], truncated)
  expect_error(load_model(truncated), "Could not load the model in '.*': ", class = "kerasdit_python_error")
})

test_that("no ImageNet weights offline is an error naming the arguments, and the script flags", {
  skip_if_no_kerasdit()
  # The download fails as it does offline: through a proxy nobody listens on, into an empty cache.
  os <- reticulate::import("os")
  saved <- list(https_proxy = os$environ$get("https_proxy"), HTTPS_PROXY = os$environ$get("HTTPS_PROXY"))
  os$environ$update(list(https_proxy = "http://127.0.0.1:9", HTTPS_PROXY = "http://127.0.0.1:9"))
  on.exit({
    for (name in c("https_proxy", "HTTPS_PROXY")) {
      if (is.null(saved[[name]])) os$environ$pop(name, NULL) else os$environ$update(saved[name])
    }
  })
  vgg_cached <- file.exists(file.path(path.expand("~/.keras/models"),
                                      "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"))
  skip_if(vgg_cached, "the VGG19 weights are in ~/.keras/models, so nothing is downloaded")
  vae <- kl_vae("kl-f4-tiny", in_channels = 1)
  error <- tryCatch(train_vae(vae, toy_images(8), batch_size = 4, verbose = 0), error = identity)
  expect_s3_class(error, "kerasdit_download_error")
  expect_match(conditionMessage(error), "Could not get the ImageNet VGG19 weights")
  expect_match(conditionMessage(error), "perceptual_weight = 0.*vgg_weights = \"/path/to/vgg19_")
  expect_match(error$script_message, "--perceptual_weight 0.*--vgg_weights PATH")
})

test_that("use_backend cannot switch a running Keras to another backend", {
  skip_if_no_kerasdit()
  running <- backend()
  expect_identical(running, backend_under_test)
  other <- setdiff(c("tensorflow", "jax"), running)
  expect_error(use_backend(other), "already running with the .* backend")
  expect_identical(use_backend(running), running)
})
