#' kerasdit: Diffusion Transformers for Keras 3 from R
#'
#' R bindings to the `keras_dit` Python package through reticulate. Choose a
#' backend with [use_backend()] (before anything touches Python), build models
#' with [kl_vae()], [dit()], [uvit()] or [reimei()], train with [train_vae()] and
#' [train_dit()], and sample with [generate_images()]. Images are R arrays of
#' shape (batch, height, width, channels) indexed as in Python.
#'
#' Install the Python side once with [install_kerasdit()].
#'
#' @keywords internal
"_PACKAGE"

# The Python module, imported on first use (see .onLoad); `keras_dit()` checks it is there first.
kd <- NULL

BACKENDS <- c("tensorflow", "jax")
ENVNAME <- "r-kerasdit"

.onLoad <- function(libname, pkgname) {
  # The virtualenv install_kerasdit() makes is the one reticulate picks when nothing else is configured.
  kd <<- reticulate::import("keras_dit", delay_load = list(environment = ENVNAME))
  # reticulate 1.28 takes any pyproject.toml above the working directory for a Poetry project and warns; the
  # checkout's own (keras-dit's, not a Poetry one) would warn on every run of the scripts from the checkout.
  project <- tryCatch(here::here(), error = function(e) "")
  toml <- file.path(project, "pyproject.toml")
  if (is.null(getOption("reticulate.poetry.project")) && file.exists(toml)) {
    lines <- readLines(toml, warn = FALSE)
    if (any(grepl('^name = "keras-dit"', lines)) && !any(grepl("^\\[tool\\.poetry", lines))) {
      options(reticulate.poetry.project = tempdir())
    }
  }
}

# What keras_dit needs from the Python that reticulate uses, checked without importing anything: NULL when all is
# there, else a message naming what is missing and the call that installs it.
python_problem <- function() {
  available <- tryCatch(reticulate::py_available(initialize = TRUE), error = function(e) FALSE)
  fix <- "run kerasdit::install_kerasdit() and restart R"
  if (!available) {
    return(sprintf("No Python found for reticulate: %s (it installs Python packages into a virtualenv).", fix))
  }
  python <- reticulate::py_config()$python
  find_spec <- reticulate::import("importlib.util")$find_spec
  has <- function(module) !is.null(find_spec(module))
  where <- sprintf("the Python that reticulate uses (%s)", python)
  if (!has("keras_dit") || !has("keras")) {
    return(sprintf(paste(
      "The Python package keras_dit is not installed in %s: %s (it installs keras_dit from the source shipped",
      "in this R package), or set RETICULATE_PYTHON to a Python that has it."), where, fix))
  }
  backend <- Sys.getenv("KERAS_BACKEND")
  installed <- BACKENDS[vapply(BACKENDS, has, logical(1))]
  if (!backend %in% installed) {
    return(sprintf(paste0(
      "The Keras backend '%s' is not installed in %s. Add it with kerasdit::install_kerasdit(backend = %s) and ",
      "restart R%s."), backend, where, deparse(union(installed, backend)),
      if (length(installed)) sprintf(", or use the installed one: use_backend(\"%s\") (in a script: --backend %s)",
                                     installed[1], installed[1]) else ""))
  }
  NULL
}

# The backend Keras will start with when none was chosen: tensorflow, or jax when only jax is installed.
default_backend <- function() {
  if (nzchar(Sys.getenv("KERAS_BACKEND"))) return(Sys.getenv("KERAS_BACKEND"))
  if (tryCatch(reticulate::py_available(initialize = TRUE), error = function(e) FALSE)) {
    find_spec <- reticulate::import("importlib.util")$find_spec
    if (is.null(find_spec("tensorflow")) && !is.null(find_spec("jax"))) return("jax")
  }
  "tensorflow"
}

# Set KERAS_BACKEND in R and, when Python already runs, in Python's os.environ.
set_backend_variable <- function(backend) {
  if (reticulate::py_available(initialize = FALSE)) {
    reticulate::import("os")$environ$update(list(KERAS_BACKEND = backend))
  }
  Sys.setenv(KERAS_BACKEND = backend)
}

# Session state: whether keras_dit was imported (`ready`), and the models' training histories.
state <- new.env(parent = emptyenv())
state$histories <- list()

#' Is the Python package available?
#'
#' `TRUE` when reticulate's Python has `keras_dit`, Keras and the chosen
#' backend. This initialises Python (with the backend chosen by
#' [use_backend()]), so call [use_backend()] first.
#'
#' @return `TRUE` or `FALSE`; when `FALSE`, the reason (what is missing and
#'   the call that installs it) is in `attr(, "reason")`.
#' @examples
#' if (is_kerasdit_available()) backend()
#' @export
is_kerasdit_available <- function() {
  if (isTRUE(state$ready)) return(TRUE)
  set_backend_variable(default_backend())
  problem <- python_problem()
  structure(is.null(problem), reason = problem)
}

# The imported module, or a "kerasdit_python_missing" error saying what is missing and how to install it.
keras_dit <- function() {
  if (isTRUE(state$ready)) return(kd)
  available <- is_kerasdit_available()
  if (!available) kerasdit_error(attr(available, "reason"), class = "kerasdit_python_missing")
  py_call(reticulate::py_get_attr(kd, "__name__"))  # imports it: an import error is translated
  state$ready <- TRUE
  kd
}

#' Choose the Keras backend
#'
#' Sets `KERAS_BACKEND` for the Python session. Keras fixes its backend when it
#' is first imported, so call this at the start of a session, before any other
#' kerasdit function; calling it later with another backend is an error that
#' says to restart R.
#'
#' @param backend `"tensorflow"` or `"jax"`.
#' @return The backend name, invisibly.
#' @examples
#' \dontrun{
#' library(kerasdit)
#' use_backend("jax")
#' }
#' @export
use_backend <- function(backend) {
  check_string(backend, "backend", BACKENDS)
  if (reticulate::py_available(initialize = FALSE)) {
    sys <- reticulate::import("sys", convert = TRUE)
    if ("keras" %in% names(sys$modules)) {
      current <- reticulate::import("keras")$backend$backend()
      if (!identical(current, backend)) {
        kerasdit_error(sprintf(paste(
          "Keras is already running with the %s backend in this R session; the backend is fixed when Keras",
          "is first imported. Restart R and call use_backend(\"%s\") before any other kerasdit function."),
          sQuote(current, FALSE), backend))
      }
      return(invisible(backend))
    }
  }
  set_backend_variable(backend)
  invisible(backend)
}

#' The running Keras backend
#'
#' @return The name of the backend Keras runs on, e.g. `"jax"`.
#' @export
backend <- function() {
  keras_dit()
  reticulate::import("keras")$backend$backend()
}
