# Errors as R conditions, and the argument checks every exported function makes before anything reaches Python.
#
# Every error kerasdit signals has class "kerasdit_error" (plus a subclass saying what kind: "kerasdit_python_error"
# for a translated Python exception, "kerasdit_python_missing" when Python, keras_dit or the backend is missing,
# "kerasdit_download_error" for the perceptual loss' weights), a one-line message naming the argument, and as its
# call the kerasdit function the user called (not the helper that noticed).

# Signal a kerasdit error. `...` become fields of the condition (e.g. `script_message`, see run_script()).
kerasdit_error <- function(message, class = NULL, call = user_call(), ...) {
  stop(structure(class = c(class, "kerasdit_error", "error", "condition"),
                 list(message = message, call = call, ...)))
}

# An R-side input error (kept for the many call sites that paste their message together).
input_error <- function(..., call = user_call()) kerasdit_error(paste0(...), call = call)

# The outermost call of an exported kerasdit function on the stack: the call the user typed (a pipe
# `x |> train_dit(d)` is the call `train_dit(x, d)`). run_script() is skipped: it wraps a script's body.
user_call <- function() {
  ns <- environment(user_call)
  exported <- setdiff(getNamespaceExports(ns), "run_script")
  for (i in seq_len(sys.nframe())) {
    fn <- sys.function(i)
    if (!identical(environment(fn), ns)) next
    name <- sys.call(i)[[1]]
    name <- if (is.call(name) && identical(name[[1]], as.name("::"))) name[[3]] else name
    if (is.name(name) && as.character(name) %in% exported) return(sys.call(i))
  }
  NULL
}

# A Python exception's message as one line: "ValueError: ...", without reticulate's wrapper and traceback.
python_message <- function(error) {
  message <- conditionMessage(error)
  message <- sub("^Error in py_call_impl\\(.*?\\) :\\s*", "", message)
  message <- sub("\\n*Detailed traceback:.*$", "", message)
  trimws(gsub("\\s+", " ", message))
}

# Run Python code; an exception becomes a "kerasdit_python_error" raised from the user's kerasdit call.
py_call <- function(expr, call = user_call()) {
  tryCatch(expr, error = function(e) {
    if (inherits(e, "kerasdit_error")) stop(e)
    kerasdit_error(python_message(e), class = "kerasdit_python_error", call = call)
  })
}

# How a bad value is shown in a message: short, with its R type when that is the problem.
show_value <- function(x) {
  if (is.null(x)) return("NULL")
  if (is.function(x)) return("a function")
  if (inherits(x, "python.builtin.object")) return(paste("a Python", class(x)[1]))
  if (is.data.frame(x)) return("a data.frame")
  if (!is.atomic(x)) return(paste("a", class(x)[1]))
  shown <- paste(utils::head(if (is.character(x)) dQuote(x, FALSE) else format(x), 3), collapse = ", ")
  if (length(x) > 3) shown <- paste0(shown, ", ... (", length(x), " values)")
  if (length(x) == 0) shown <- paste0("an empty ", class(x)[1])
  shown
}

# One number: `name` must be numeric, of length 1, finite, whole if `whole`, and in [min, max]
# (`above` makes the lower bound strict). NULL passes when `null_ok`. Returns the number (integer if whole).
check_number <- function(x, name, min = -Inf, max = Inf, whole = FALSE, above = FALSE, null_ok = FALSE) {
  if (is.null(x) && null_ok) return(NULL)
  kind <- if (whole) "a whole number" else "a number"
  range <- if (is.finite(min) && is.finite(max)) sprintf(" in %s%s, %s]", if (above) "(" else "[", min, max)
    else if (is.finite(min)) sprintf(" %s %s", if (above) ">" else ">=", min)
    else if (is.finite(max)) sprintf(" <= %s", max) else ""
  ok <- is.numeric(x) && !is.factor(x) && length(x) == 1 && !is.na(x) && is.finite(x) &&
    (!whole || x == round(x)) && x <= max && (if (above) x > min else x >= min)
  if (!ok) {
    kerasdit_error(sprintf("'%s' must be %s%s%s, got %s.", name, kind, range, if (null_ok) " (or NULL)" else "",
                           show_value(x)))
  }
  if (whole) as.integer(x) else as.numeric(x)
}

# One string, one of `choices` when given.
check_string <- function(x, name, choices = NULL, null_ok = FALSE) {
  if (is.null(x) && null_ok) return(NULL)
  if (!is.character(x) || length(x) != 1 || is.na(x) || (!is.null(choices) && !x %in% choices)) {
    wanted <- if (is.null(choices)) "a single string"
      else paste("one of", paste(dQuote(choices, FALSE), collapse = ", "))
    kerasdit_error(sprintf("'%s' must be %s%s, got %s.", name, wanted, if (null_ok) " or NULL" else "",
                           show_value(x)))
  }
  x
}

check_flag <- function(x, name) {
  if (!is.logical(x) || length(x) != 1 || is.na(x)) {
    kerasdit_error(sprintf("'%s' must be TRUE or FALSE, got %s.", name, show_value(x)))
  }
  x
}

# Keras' verbose argument: 0 silent, 1 progress bar, 2 one line per epoch.
check_verbose <- function(x) check_number(x, "verbose", 0, 2, whole = TRUE)

# What kind of kerasdit Python object `x` is: "diffusion_model", "vae", "backbone" or NULL.
model_kind <- function(x) {
  if (!inherits(x, "python.builtin.object")) return(NULL)
  kd <- keras_dit()
  isinstance <- reticulate::import_builtins()$isinstance
  if (isinstance(x, kd$tasks$DiffusionModel)) return("diffusion_model")
  if (isinstance(x, kd$models$KLVAE)) return("vae")
  if (isinstance(x, kd$models$backbone$Backbone)) return("backbone")
  NULL
}

MODEL_KINDS <- c(diffusion_model = "a diffusion model from diffusion_model() or load_model()",
                 vae = "a KL-VAE from kl_vae() or load_model()",
                 backbone = "a backbone from dit(), uvit() or reimei()")

# `x` must be a model of `kind`; returns it with its R class (see as_kerasdit()).
check_model <- function(x, name, kind) {
  if (!identical(model_kind(x), kind)) {
    kerasdit_error(sprintf("'%s' must be %s, got %s.", name, MODEL_KINDS[[kind]], show_value(x)))
  }
  as_kerasdit(x, kind)
}

# Images of a data set against what a model takes: channels always, height and width when `size` is given.
check_image_shape <- function(data, channels, size = NULL, what) {
  if (!reticulate::py_has_attr(data, "image_shape")) return(invisible())
  shape <- as.integer(unlist(data$image_shape))
  if (shape[3] != channels) {
    kerasdit_error(sprintf(paste(
      "'data' has %d-channel images but %s takes %d-channel images; give %d-channel images (channels = %d for",
      "a folder or a built-in data set) or build the model with in_channels = %d."),
      shape[3], what, channels, channels, channels, shape[3]))
  }
  if (!is.null(size) && any(shape[1:2] != size)) {
    kerasdit_error(sprintf("'data' has %d x %d images but %s makes %d x %d images; use image_size = %d.",
                           shape[1], shape[2], what, size, size, size))
  }
  invisible()
}
