"""``python -m automl_tl.search.helper RUN_DIR [--folds]``: a helper of the search in RUN_DIR (`automl_tl.search.workers`).

With ``--folds`` it trains the search's fold models only: started after the trials, it runs none.

It reads what to search from the run's ``config.json``, written by the search that started it, and
the storage URL and data home from its environment, so no secret is ever on a command line.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from rich.console import Console

from automl_tl.cli.errors import print_error
from automl_tl.cli.search import EXIT_INTERRUPTED, TerminateAsInterrupt
from automl_tl.config import RunConfig
from automl_tl.datahome import data_home
from automl_tl.errors import UserError
from automl_tl.registry import get_plugin
from automl_tl.rundir import RunDir
from automl_tl.storage import STORAGE_ENV


def main(argv: list[str]) -> int:
    """Search in the run directory ``argv[0]`` until the study's budget is spent (or, with `FOLDS_ONLY`,
    train fold models until the search stops this helper); the exit code."""
    import optuna

    from automl_tl.search.engine import Interrupted, SearchRun
    from automl_tl.search.inputs import SearchRequest
    from automl_tl.search.workers import FOLDS_ONLY

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    run = RunDir(Path(argv[0]))
    try:
        saved = run.load_config()
        if saved is None:
            raise UserError(f"{run.root} holds no search to help (no config.json)")
        config = RunConfig.model_validate(saved["config"])
        request = SearchRequest(config=config, data_home=data_home(), run_dir=run.root,
                                storage=os.environ.get(STORAGE_ENV) or None, command=list(saved.get("command", [])))
        with warnings.catch_warnings(), TerminateAsInterrupt():
            SearchRun(request, get_plugin(config.modality), Console(), helper=True,
                      folds_only=FOLDS_ONLY in argv[1:]).run()
    except UserError as exc:
        print_error(exc)
        return 2
    except (Interrupted, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
