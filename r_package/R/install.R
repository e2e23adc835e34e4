# Installing the Python side: keras_dit from the source this R package ships (or a checkout, wheel or sdist the
# user points at), Keras and the chosen backends, into a virtualenv that is either complete or not there at all.

#' Python requirements for a backend
#'
#' What [install_kerasdit()] installs: the Python package with the extras of
#' the chosen backends, and a NumPy pin chosen from the reticulate version.
#' reticulate supports NumPy 2 from version 1.38.0 on; with an older
#' reticulate (Debian 12 ships 1.28) arrays cannot cross between R and NumPy 2,
#' so NumPy is pinned below 2 (which also limits JAX to 0.7.x).
#'
#' @param backend one or more of `"tensorflow"` and `"jax"`.
#' @param package the Python package to install: a folder holding its
#'   `pyproject.toml` (a checkout of keras_dit), a wheel (`.whl`) or an sdist
#'   (`.tar.gz`).
#' @param reticulate_version the reticulate version to plan for.
#' @return A character vector of pip requirements.
#' @examples
#' kerasdit_requirements(c("jax", "tensorflow"), package = "keras_dit", reticulate_version = "1.28")
#' @export
kerasdit_requirements <- function(backend = c("tensorflow", "jax"), package = python_source(),
                                  reticulate_version = utils::packageVersion("reticulate")) {
  backend <- check_backends(backend)
  package <- check_string(package, "package")
  version <- tryCatch(package_version(reticulate_version), error = function(e) {
    kerasdit_error(sprintf("'reticulate_version' must be a version such as \"1.28\", got %s.",
                           show_value(reticulate_version)))
  })
  numpy <- if (version < "1.38.0") "numpy>=1.26,<2" else "numpy>=1.26"
  c(sprintf("%s[%s]", package, paste(backend, collapse = ",")), numpy)
}

check_backends <- function(backend) {
  if (!is.character(backend) || length(backend) == 0 || anyNA(backend) || !all(backend %in% BACKENDS)) {
    kerasdit_error(sprintf("'backend' must be one or more of %s, got %s.",
                           paste(dQuote(BACKENDS, FALSE), collapse = " and "), show_value(backend)))
  }
  unique(backend)
}

# The keras_dit source installed with this R package (r_package/inst/python links to the checkout's files).
python_source <- function() {
  system.file("python", package = "kerasdit")
}

# A package argument checked: a source folder, a wheel or an sdist that exists.
check_python_package <- function(package) {
  package <- check_string(package, "package")
  source <- dir.exists(package) && any(file.exists(file.path(package, c("pyproject.toml", "setup.py"))))
  archive <- file.exists(package) && !dir.exists(package) && grepl("\\.(whl|tar\\.gz|zip)$", package)
  if (!source && !archive) {
    kerasdit_error(sprintf(paste(
      "'package' must be the keras_dit Python package as a folder with its pyproject.toml (a checkout of the",
      "repository), a wheel (.whl) or an sdist (.tar.gz); %s is none of these.%s"), dQuote(package, FALSE),
      if (nzchar(package)) ""
      else " This R package ships no Python source: reinstall it from a checkout (R CMD INSTALL r_package)."))
  }
  normalizePath(package)
}

#' Install the Python package into a virtualenv
#'
#' Creates the virtualenv `envname` with `keras_dit`, Keras and the chosen
#' backends (NumPy pinned as [kerasdit_requirements()] says), installing
#' `keras_dit` from the Python source shipped inside this R package, or from
#' the checkout, wheel or sdist given as `package`; nothing is looked up by
#' name on a package index. An existing environment of that name is replaced;
#' if anything fails, the new environment is removed and the old one is put
#' back, so a failed install leaves no half-made environment behind.
#'
#' kerasdit uses the environment `"r-kerasdit"` by default (under
#' `WORKON_HOME`, default `~/.virtualenvs`). When Python has not started yet in
#' this R session, the new environment is used right away; otherwise restart R.
#'
#' @param envname name or path of the virtualenv.
#' @param backend one or more of `"tensorflow"` and `"jax"`; both are installed
#'   by default, as keras3's `install_keras()` does.
#' @param package `NULL` (the source shipped with this R package), or the
#'   keras_dit Python package as a source folder, wheel or sdist.
#' @param python the Python (>= 3.10) to create the virtualenv with (`NULL`:
#'   reticulate's choice).
#' @param pip_options more options for `pip install`, e.g. `"--no-compile"`.
#' @return The path of the environment's Python, invisibly.
#' @examples
#' \dontrun{
#' install_kerasdit(backend = "jax")
#' install_kerasdit(backend = c("jax", "tensorflow"), package = "path/to/keras_dit-0.1.0-py3-none-any.whl")
#' }
#' @export
install_kerasdit <- function(envname = ENVNAME, backend = c("tensorflow", "jax"), package = NULL, python = NULL,
                             pip_options = character()) {
  envname <- check_string(envname, "envname")
  backend <- check_backends(backend)
  python <- check_string(python, "python", null_ok = TRUE)
  if (!is.character(pip_options)) kerasdit_error(sprintf("'pip_options' must be a character vector, got %s.",
                                                         show_value(pip_options)))
  shipped <- is.null(package)
  package <- check_python_package(if (shipped) python_source() else package)
  if (shipped) {
    # pip builds a source folder in place; build a copy, not the installed R package's files.
    build <- tempfile("keras_dit-src-")
    dir.create(build)
    file.copy(list.files(package, full.names = TRUE), build, recursive = TRUE)
    on.exit(unlink(build, recursive = TRUE), add = TRUE)
    package <- build
  }
  requirements <- kerasdit_requirements(backend, package)
  path <- path.expand(reticulate::virtualenv_root())
  path <- if (grepl("/", envname, fixed = TRUE)) path.expand(envname) else file.path(path, envname)
  backup <- NULL
  if (file.exists(path)) {
    if (!file.exists(file.path(path, "pyvenv.cfg"))) {
      kerasdit_error(sprintf("'%s' exists and is not a virtualenv; give another envname or remove it.", path))
    }
    backup <- paste0(path, ".kerasdit-old")
    unlink(backup, recursive = TRUE)
    file.rename(path, backup)
  }
  # R puts its library folders (with the system's libpython) first on LD_LIBRARY_PATH; a Python with its own
  # shared libpython (pyenv, a source build) then fails to start. venv and pip need none of them.
  library_path <- Sys.getenv("LD_LIBRARY_PATH", NA)
  Sys.unsetenv("LD_LIBRARY_PATH")
  on.exit(if (!is.na(library_path)) Sys.setenv(LD_LIBRARY_PATH = library_path), add = TRUE)
  done <- FALSE
  on.exit(if (!done) {
    unlink(path, recursive = TRUE)
    if (!is.null(backup)) file.rename(backup, path)
  } else if (!is.null(backup)) unlink(backup, recursive = TRUE), add = TRUE)
  tryCatch({
    reticulate::virtualenv_create(path, python = python, packages = FALSE)
    reticulate::virtualenv_install(path, requirements, pip_options = pip_options)
  }, error = function(e) {
    kerasdit_error(sprintf("Installing %s into '%s' failed (%s); %s.", paste(requirements, collapse = " "), path,
                           trimws(gsub("\\s+", " ", conditionMessage(e))),
                           if (is.null(backup)) "no environment was left behind" else "the old environment is back"),
                   class = "kerasdit_install_error")
  })
  env_python <- reticulate::virtualenv_python(path)
  check_environment(env_python, backend, requirements)
  done <- TRUE
  use_now <- !reticulate::py_available(initialize = FALSE) && !nzchar(Sys.getenv("RETICULATE_PYTHON"))
  if (use_now) reticulate::use_virtualenv(path, required = TRUE)
  message(sprintf("Installed keras_dit with %s into '%s'.%s", paste(backend, collapse = " and "), path,
                  if (use_now) "" else " Restart R to use it."))
  invisible(env_python)
}

# The new environment imports keras_dit, has each backend's module, and a NumPy that reticulate can convert.
check_environment <- function(python, backend, requirements) {
  script <- tempfile(fileext = ".py")
  on.exit(unlink(script))
  writeLines(c(
    "import importlib.util, numpy, keras_dit",
    sprintf("missing = [m for m in %s if importlib.util.find_spec(m) is None]",
            paste0("[", paste(sprintf("'%s'", backend), collapse = ", "), "]")),
    "assert not missing, f'backend modules missing: {missing}'",
    if (any(grepl("<2", requirements, fixed = TRUE))) "assert numpy.__version__ < '2', f'numpy {numpy.__version__}'"
  ), script)
  output <- suppressWarnings(system2(python, script, stdout = TRUE, stderr = TRUE,
                                     env = sprintf("KERAS_BACKEND=%s", backend[1])))
  status <- attr(output, "status")
  if (!is.null(status) && status != 0) {
    kerasdit_error(sprintf("The new environment does not import keras_dit: %s",
                           paste(utils::tail(output, 3), collapse = " ")), class = "kerasdit_install_error")
  }
}
