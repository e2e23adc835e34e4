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

.onLoad <- function(libname, pkgname) {
  kd <<- reticulate::import(
    "keras_dit",
    delay_load = list(
      environment = "r-kerasdit",
      before_load = function() {
        if (!nzchar(Sys.getenv("KERAS_BACKEND"))) Sys.setenv(KERAS_BACKEND = "tensorflow")
      }
    )
  )
}

not_installed_message <- function() {
  python <- tryCatch(reticulate::py_config()$python, error = function(e) "none found")
  paste0(
    "The Python package 'keras_dit' is not installed in the Python that reticulate uses (", python, "). ",
    "Install it with kerasdit::install_kerasdit() and restart R, or point RETICULATE_PYTHON at a Python ",
    "that has it (pip install keras-dit)."
  )
}

#' Is the Python package available?
#'
#' `TRUE` when reticulate's Python can import `keras_dit`. This initialises
#' Python (with the backend chosen by [use_backend()]), so call [use_backend()]
#' first.
#'
#' @return `TRUE` or `FALSE`.
#' @examples
#' if (is_kerasdit_available()) backend()
#' @export
is_kerasdit_available <- function() {
  isTRUE(tryCatch(reticulate::py_module_available("keras_dit"), error = function(e) FALSE))
}

# The imported module, or a clear error saying how to install it.
keras_dit <- function() {
  if (!is_kerasdit_available()) stop(not_installed_message(), call. = FALSE)
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
  if (!is.character(backend) || length(backend) != 1 || !backend %in% BACKENDS) {
    stop(sprintf("Unknown Keras backend %s; kerasdit supports %s.",
                 paste(deparse(backend), collapse = ""), paste(sQuote(BACKENDS, FALSE), collapse = " and ")),
         call. = FALSE)
  }
  if (reticulate::py_available(initialize = FALSE)) {
    sys <- reticulate::import("sys", convert = TRUE)
    if ("keras" %in% names(sys$modules)) {
      current <- reticulate::import("keras")$backend$backend()
      if (!identical(current, backend)) {
        stop(sprintf(paste(
          "Keras is already running with the %s backend in this R session; the backend is fixed when Keras",
          "is first imported. Restart R and call use_backend(\"%s\") before any other kerasdit function."),
          sQuote(current, FALSE), backend), call. = FALSE)
      }
      return(invisible(backend))
    }
    reticulate::import("os")$environ$update(list(KERAS_BACKEND = backend))
  }
  Sys.setenv(KERAS_BACKEND = backend)
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

#' Python requirements for a backend
#'
#' What [install_kerasdit()] installs: the package with its backend extra, and a
#' NumPy pin chosen from the reticulate version. reticulate supports NumPy 2
#' from version 1.38.0 on; with an older reticulate (Debian 12 ships 1.28)
#' arrays cannot cross between R and NumPy 2, so NumPy is pinned below 2 (which
#' also limits JAX to 0.7.x).
#'
#' @param backend `"tensorflow"` or `"jax"`.
#' @param package the pip requirement of the Python package: `"keras-dit"`, or
#'   the path of a checkout.
#' @param reticulate_version the reticulate version to plan for.
#' @return A character vector of pip requirements.
#' @examples
#' kerasdit_requirements("jax", reticulate_version = "1.28")
#' @export
kerasdit_requirements <- function(backend = c("tensorflow", "jax"), package = "keras-dit",
                                  reticulate_version = utils::packageVersion("reticulate")) {
  backend <- match.arg(backend)
  numpy <- if (package_version(reticulate_version) < "1.38.0") "numpy>=1.26,<2" else "numpy>=1.26"
  c(sprintf("%s[%s]", package, backend), numpy)
}

#' Install the Python package into a virtualenv
#'
#' Creates (or updates) the virtualenv `envname` with `keras_dit`, Keras and the
#' chosen backend, pinning NumPy as [kerasdit_requirements()] says. kerasdit
#' uses the environment `"r-kerasdit"` by default; restart R afterwards.
#'
#' @param envname name or path of the virtualenv.
#' @param backend `"tensorflow"` or `"jax"`.
#' @param package pip requirement of the Python package (`"keras-dit"`, or the
#'   path of a checkout of the repository).
#' @param python the Python to create the virtualenv with (`NULL`: reticulate's
#'   choice).
#' @param ... passed to [reticulate::virtualenv_install()].
#' @return The path of the environment's Python, invisibly.
#' @examples
#' \dontrun{
#' install_kerasdit(backend = "jax")
#' }
#' @export
install_kerasdit <- function(envname = "r-kerasdit", backend = c("tensorflow", "jax"), package = "keras-dit",
                             python = NULL, ...) {
  requirements <- kerasdit_requirements(backend, package)
  if (!reticulate::virtualenv_exists(envname)) reticulate::virtualenv_create(envname, python = python)
  reticulate::virtualenv_install(envname, requirements, ...)
  message("Installed ", paste(requirements, collapse = ", "), " into '", envname, "'. Restart R to use it.")
  invisible(reticulate::virtualenv_python(envname))
}

# Run Python code; a Python exception becomes an R error of class "kerasdit_python_error" whose message is the
# Python one (type and text), raised from the calling kerasdit function.
py_call <- function(expr, call = sys.call(-1)) {
  tryCatch(expr, error = function(e) {
    if (inherits(e, "kerasdit_error")) stop(e)
    message <- conditionMessage(e)
    message <- sub("^Error in py_call_impl\\(.*?\\) :\\s*", "", message)
    message <- trimws(sub("\\n*Detailed traceback:.*$", "", message))
    stop(structure(class = c("kerasdit_python_error", "error", "condition"),
                   list(message = message, call = call)))
  })
}

# An R-side input error, raised from the calling kerasdit function.
input_error <- function(..., call = sys.call(-1)) {
  stop(structure(class = c("kerasdit_error", "error", "condition"),
                 list(message = paste0(...), call = call)))
}
