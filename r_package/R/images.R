# Pure R image helpers: no Python needed, so they work on arrays from anywhere.

#' Arrange images in a grid
#'
#' @param images an image batch (batch, height, width, channels), see
#'   [as_image_array()].
#' @param ncol images per row (`NULL`: about the square root of the batch).
#' @param padding pixels between images (filled with 0).
#' @return One image (height, width, channels) of the same kind of values.
#' @examples
#' dim(image_grid(array(255L, c(6, 8, 8, 3)), ncol = 3))  # 17 26 3 with padding 1
#' @export
image_grid <- function(images, ncol = NULL, padding = 1) {
  images <- as_image_array(images)
  d <- dim(images)
  ncol <- if (is.null(ncol)) ceiling(sqrt(d[1])) else as_whole(ncol, "ncol")
  nrow <- ceiling(d[1] / ncol)
  step_h <- d[2] + padding
  step_w <- d[3] + padding
  grid <- array(if (is.integer(images)) 0L else -1, c(nrow * step_h - padding, ncol * step_w - padding, d[4]))
  for (b in seq_len(d[1])) {
    top <- ((b - 1) %/% ncol) * step_h
    left <- ((b - 1) %% ncol) * step_w
    grid[top + seq_len(d[2]), left + seq_len(d[3]), ] <- images[b, , , ]
  }
  grid
}

# One image (H, W, C) of either kind -> numbers in [0, 1], as png and rasterImage take them.
unit_range <- function(image, integer) if (integer) image / 255 else (image + 1) / 2

#' Save images as PNG files
#'
#' @param images an image batch (batch, height, width, channels): integers in
#'   0..255 as [generate_images()] returns, or numbers in \[-1, 1\].
#' @param path a folder, to write one file per image (`<prefix>_001.png`, ...),
#'   or a file name ending in `.png`, to write one grid of all images.
#' @param prefix file name prefix in a folder.
#' @param ncol images per row of a grid.
#' @return `images`, invisibly, with the written paths in `attr(, "paths")`;
#'   so it fits in a pipe before [plot_images()].
#' @examples
#' files <- attr(save_images(array(128L, c(2, 8, 8, 3)), tempdir()), "paths")
#' @export
save_images <- function(images, path, prefix = "image", ncol = NULL) {
  checked <- as_image_array(images)
  integer <- is.integer(checked)
  if (grepl("\\.png$", path, ignore.case = TRUE)) {
    dir.create(dirname(path), showWarnings = FALSE, recursive = TRUE)
    png::writePNG(unit_range(image_grid(checked, ncol), integer), path)
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
#' Draws an image batch on the current graphics device, in a grid (inline in
#' R Markdown).
#'
#' @param images an image batch (batch, height, width, channels).
#' @param ncol images per row.
#' @param titles optional title of each image.
#' @return `images`, invisibly.
#' @export
plot_images <- function(images, ncol = NULL, titles = NULL) {
  checked <- as_image_array(images)
  d <- dim(checked)
  if (!is.null(titles) && length(titles) != d[1]) {
    input_error(sprintf("Got %d titles for %d images.", length(titles), d[1]))
  }
  ncol <- if (is.null(ncol)) ceiling(sqrt(d[1])) else as_whole(ncol, "ncol")
  old <- graphics::par(mfrow = c(ceiling(d[1] / ncol), ncol), mar = c(0.2, 0.2, if (is.null(titles)) 0.2 else 1.5, 0.2))
  on.exit(graphics::par(old))
  for (b in seq_len(d[1])) {
    image <- unit_range(array(checked[b, , , ], d[-1]), is.integer(checked))
    raster <- if (d[4] == 1) grDevices::as.raster(image[, , 1]) else grDevices::as.raster(image[, , 1:3])
    graphics::plot.new()
    graphics::plot.window(c(0, d[3]), c(0, d[2]), asp = 1)
    graphics::rasterImage(raster, 0, 0, d[3], d[2], interpolate = FALSE)
    if (!is.null(titles)) graphics::title(titles[b], cex.main = 0.8)
  }
  invisible(images)
}
