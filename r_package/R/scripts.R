#' Command-line options of the kerasdit scripts
#'
#' Overrides the hyper-parameters at the top of a script (`train_vae.R`,
#' `scale_factor.R`, `train_DiT.R`) from `--name value` or `--name=value`
#' arguments. Values take the type of the default (number, `TRUE`/`FALSE`,
#' text); `none` gives `NULL`. `--help` prints the options and returns `NULL`.
#'
#' @param defaults named list of hyper-parameters.
#' @param args the command-line arguments.
#' @return The updated list, or `NULL` after `--help`.
#' @examples
#' script_args(list(epochs = 10, data = "digits"), c("--epochs", "2", "--data=my_images"))
#' @export
script_args <- function(defaults, args = commandArgs(trailingOnly = TRUE)) {
  if (!is.list(defaults) || is.null(names(defaults)) || !all(nzchar(names(defaults)))) {
    kerasdit_error(sprintf("'defaults' must be a named list of hyper-parameters, got %s.", show_value(defaults)))
  }
  if (!is.character(args)) kerasdit_error(sprintf("'args' must be a character vector, got %s.", show_value(args)))
  if ("--help" %in% args || "-h" %in% args) {
    cat("Options (default values):\n")
    for (name in names(defaults)) cat(sprintf("  --%-20s %s\n", name, format(deparse(defaults[[name]]))))
    return(invisible(NULL))
  }
  values <- defaults
  i <- 1
  while (i <= length(args)) {
    arg <- args[i]
    if (!startsWith(arg, "--")) {
      input_error("Unexpected argument '", arg, "'; options look like --epochs 10.", call = NULL)
    }
    if (grepl("=", arg, fixed = TRUE)) {
      name <- sub("=.*$", "", substring(arg, 3))
      value <- sub("^[^=]*=", "", arg)
    } else {
      name <- substring(arg, 3)
      if (i == length(args)) input_error("Option --", name, " needs a value.", call = NULL)
      value <- args[i + 1]
      i <- i + 1
    }
    name <- gsub("-", "_", name)
    if (!name %in% names(defaults)) {
      input_error("Unknown option --", name, ". Valid options: ", paste0("--", names(defaults), collapse = ", "), ".",
                  call = NULL)
    }
    default <- defaults[[name]]
    values[name] <- list(if (tolower(value) == "none") NULL
      else if (is.logical(default)) as_flag(value, name)
      else if (is.numeric(default)) as_number(value, name)
      else value)
    i <- i + 1
  }
  values
}

as_number <- function(value, name) {
  number <- suppressWarnings(as.numeric(value))
  if (is.na(number)) input_error("Option --", name, " takes a number, got '", value, "'.", call = NULL)
  number
}

as_flag <- function(value, name) {
  flag <- switch(tolower(value), true = , yes = , `1` = TRUE, false = , no = , `0` = FALSE, NA)
  if (is.na(flag)) input_error("Option --", name, " takes TRUE or FALSE, got '", value, "'.", call = NULL)
  flag
}

#' Run a script's body with errors printed as one clear line
#'
#' Used by the scripts under `system.file("scripts", package = "kerasdit")`:
#' an error prints `Error in <function>(): <message>` and exits with status 1
#' instead of a traceback. Errors that a script's flags fix (such as the
#' perceptual loss' weights that cannot be downloaded offline) name the flags.
#'
#' @param expr the script's body.
#' @return The value of `expr`, invisibly.
#' @export
run_script <- function(expr) {
  tryCatch(invisible(expr), error = function(e) {
    call <- conditionCall(e)
    where <- if (is.call(call) && is.name(call[[1]])) sprintf(" in %s()", as.character(call[[1]])) else ""
    text <- if (is.character(e$script_message)) e$script_message else conditionMessage(e)
    message("Error", where, ": ", trimws(gsub("\\s+", " ", text)))
    quit(save = "no", status = 1)
  })
}
