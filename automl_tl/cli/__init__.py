"""The `automl-tl` command line: one module per command group, one error formatter."""
