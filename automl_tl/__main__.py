"""``python -m automl_tl``: the `automl-tl` command, run by the interpreter at hand (the app starts searches so)."""

from automl_tl.cli.app import main

main()
