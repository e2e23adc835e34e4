library(testthat)
library(kerasdit)

test_check("kerasdit")
