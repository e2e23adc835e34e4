# Pure R image helpers: no Python needed, so they work on arrays from anywhere. save_images() writes, and
# plot_images() draws, the same image_grid(): tiles in rows of `ncol`, `padding` pixels of white between them.

#' Arrange images in a grid
#'
#' @param images an image batch (batch, height, width, channels), see
#'   [as_image_array()].
#' @param ncol images per row (`NULL`: about the square root of the batch).
#' @param padding pixels between images, filled with white so that tiles do
#'   not run together.
#' @return One image (height, width, channels) of the same kind of values,
#'   with its layout (`nrow`, `ncol`, `padding`) in `attr(, "layout")`.
#' @examples
#' dim(image_grid(array(255L, c(6, 8, 8, 3)), ncol = 3))  # 18 28 3 with padding 2
#' @export
image_grid <- function(images, ncol = NULL, padding = 2) {
  images <- as_image_array(images)
  d <- dim(images)
  ncol <- grid_columns(d[1], ncol)
  padding <- check_number(padding, "padding", 0, whole = TRUE)
  nrow <- ceiling(d[1] / ncol)
  step_h <- d[2] + padding
  step_w <- d[3] + padding
  white <- if (is.integer(images)) 255L else 1
  grid <- array(white, c(nrow * step_h - padding, ncol * step_w - padding, d[4]))
  for (b in seq_len(d[1])) {
    top <- ((b - 1) %/% ncol) * step_h
    left <- ((b - 1) %% ncol) * step_w
    grid[top + seq_len(d[2]), left + seq_len(d[3]), ] <- images[b, , , ]
  }
  structure(grid, layout = list(nrow = nrow, ncol = ncol, padding = padding))
}

# Images per row: `ncol` checked, or about the square root of the batch (at most the batch).
grid_columns <- function(count, ncol) {
  if (is.null(ncol)) return(as.integer(ceiling(sqrt(count))))
  min(check_number(ncol, "ncol", 1, whole = TRUE), count)
}

# One image (H, W, C) of either kind -> numbers in [0, 1], as png and rasterImage take them.
unit_range <- function(image, integer) if (integer) image / 255 else (image + 1) / 2

#' Save images as PNG files
#'
#' @param images an image batch (batch, height, width, channels): integers in
#'   0..255 as [generate_images()] returns, or numbers in \[-1, 1\].
#' @param path a folder, to write one file per image (`<prefix>_001.png`, ...),
#'   or a file name ending in `.png`, to write one [image_grid()] of all images.
#' @param prefix file name prefix in a folder.
#' @param ncol images per row of a grid.
#' @param padding pixels between the images of a grid.
#' @return `images`, invisibly, with the written paths in `attr(, "paths")`;
#'   so it fits in a pipe before [plot_images()].
#' @examples
#' files <- attr(save_images(array(128L, c(2, 8, 8, 3)), tempdir()), "paths")
#' @export
save_images <- function(images, path, prefix = "image", ncol = NULL, padding = 2) {
  checked <- as_image_array(images)
  path <- check_string(path, "path")
  prefix <- check_string(prefix, "prefix")
  integer <- is.integer(checked)
  if (grepl("\\.png$", path, ignore.case = TRUE)) {
    dir.create(dirname(path), showWarnings = FALSE, recursive = TRUE)
    grid <- image_grid(checked, ncol, padding)
    png::writePNG(unit_range(grid, integer), path)
    paths <- path
  } else {
    dir.create(path, showWarnings = FALSE, recursive = TRUE)
    paths <- file.path(path, sprintf("%s_%03d.png", prefix, seq_len(dim(checked)[1])))
    for (b in seq_along(paths)) {
      png::writePNG(unit_range(array(checked[b, , , ], dim(checked)[-1]), integer), paths[b])
    }
  }
  attr(images, "paths") <- paths
  invisible(images)
}

#' Plot images
#'
#' Draws an image batch on the current graphics device (inline in R
#' Markdown) as the same [image_grid()] that [save_images()] writes, with an
#' optional title above each image.
#'
#' @param images an image batch (batch, height, width, channels).
#' @param ncol images per row.
#' @param titles optional title of each image.
#' @param padding pixels between images.
#' @return `images`, invisibly, with the grid's layout (`nrow`, `ncol`,
#'   `padding`) in `attr(, "layout")`.
#' @export
plot_images <- function(images, ncol = NULL, titles = NULL, padding = 2) {
  checked <- as_image_array(images)
  d <- dim(checked)
  if (!is.null(titles) && length(titles) != d[1]) {
    input_error(sprintf("'titles' must have one title per image (%d), got %d.", d[1], length(titles)))
  }
  grid <- image_grid(checked, ncol, padding)
  layout <- attr(grid, "layout")
  image <- unit_range(grid, is.integer(checked))
  raster <- if (d[4] == 1) grDevices::as.raster(image[, , 1]) else grDevices::as.raster(image[, , 1:3])
  height <- dim(grid)[1]
  width <- dim(grid)[2]
  old <- graphics::par(mar = c(0.2, 0.2, 0.2, 0.2))
  on.exit(graphics::par(old))
  # A line of text above each row of tiles when there are titles.
  band <- if (is.null(titles)) 0 else 0.25 * d[2]
  graphics::plot.new()
  graphics::plot.window(c(0, width), c(0, height + layout$nrow * band), asp = 1, xaxs = "i", yaxs = "i")
  for (row in seq_len(layout$nrow)) {
    rows <- (row - 1) * (d[2] + layout$padding) + seq_len(d[2])
    top <- height + layout$nrow * band - (row - 1) * (d[2] + layout$padding + band) - band
    graphics::rasterImage(raster[rows, , drop = FALSE], 0, top - d[2], width, top, interpolate = FALSE)
  }
  if (!is.null(titles)) {
    b <- seq_len(d[1]) - 1
    x <- (b %% layout$ncol) * (d[3] + layout$padding) + d[3] / 2
    y <- height + layout$nrow * band - (b %/% layout$ncol) * (d[2] + layout$padding + band) - band / 2
    graphics::text(x, y, titles, cex = 0.8, xpd = NA)
  }
  invisible(structure(images, layout = layout))
}
