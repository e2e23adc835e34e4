#' Render the inference notebook on a trained model
#'
#' Renders the notebook `Inference.Rmd` shipped with the package (also
#' `examples/Inference.Rmd` in a checkout) on the `.keras` file that
#' `train_DiT.R` wrote: it loads the model and draws samples with guidance, a
#' negative prompt and two samplers. The model path is resolved in the
#' folder you call this from, before rendering starts; a missing model is an
#' error.
#'
#' @param model the diffusion model's `.keras` file.
#' @param backend `"tensorflow"` or `"jax"`; `NULL` takes the one chosen with
#'   [use_backend()] (or the default one).
#' @param output_file the HTML file to write; `NULL` writes `Inference.html`
#'   next to the model.
#' @param num_steps sampler steps.
#' @param guidance_scale classifier-free guidance scale.
#' @param quiet passed to [rmarkdown::render()].
#' @return The path of the HTML file, invisibly.
#' @examples
#' \dontrun{
#' render_notebook("outputs/dit.keras", backend = "jax")
#' }
#' @export
render_notebook <- function(model, backend = NULL, output_file = NULL, num_steps = 50, guidance_scale = 4,
                            quiet = TRUE) {
  model <- check_string(model, "model")
  if (!file.exists(model) || dir.exists(model)) {
    kerasdit_error(sprintf(paste("No model file '%s' (in %s): train one with train_DiT.R, or give the path of",
                                 "its .keras file."), model, getwd()))
  }
  model <- normalizePath(model)
  backend <- check_string(backend, "backend", BACKENDS, null_ok = TRUE)
  if (is.null(backend)) backend <- Sys.getenv("KERAS_BACKEND", "tensorflow")
  num_steps <- check_number(num_steps, "num_steps", 1, whole = TRUE)
  guidance_scale <- check_number(guidance_scale, "guidance_scale", 0)
  quiet <- check_flag(quiet, "quiet")
  output_file <- check_string(output_file, "output_file", null_ok = TRUE)
  if (is.null(output_file)) output_file <- file.path(dirname(model), "Inference.html")
  dir.create(dirname(output_file), showWarnings = FALSE, recursive = TRUE)
  output_file <- file.path(normalizePath(dirname(output_file)), basename(output_file))
  if (!requireNamespace("rmarkdown", quietly = TRUE) || !rmarkdown::pandoc_available()) {
    kerasdit_error(paste("Rendering needs the R package rmarkdown and pandoc: on Debian/Ubuntu",
                         "apt-get install r-cran-rmarkdown pandoc, elsewhere install.packages(\"rmarkdown\")."))
  }
  # Render a copy in a temporary folder: the installed package's folder may be read-only.
  work <- tempfile("kerasdit-notebook-")
  dir.create(work)
  on.exit(unlink(work, recursive = TRUE), add = TRUE)
  notebook <- file.path(work, "Inference.Rmd")
  file.copy(system.file("notebooks", "Inference.Rmd", package = "kerasdit"), notebook)
  rmarkdown::render(notebook, output_file = basename(output_file), output_dir = dirname(output_file),
                    intermediates_dir = work, knit_root_dir = getwd(), envir = new.env(), quiet = quiet,
                    params = list(model = model, backend = backend, num_steps = num_steps,
                                  guidance_scale = guidance_scale))
  message("Rendered ", output_file)
  invisible(output_file)
}
