"""Where named datasets live: ``--data-home``, else ``AUTOML_TL_DATA``, else a per-user folder.

Datasets are never copied into a run or the repository; recipes name them (``dataset = "fsdd"``)
and the data home says where that name points on this machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from automl_tl.errors import UserError

ENV_VAR = "AUTOML_TL_DATA"


def data_home(option: Path | None = None) -> Path:
    """The data home in force (it need not exist: plugins may fall back to built-in demo data)."""
    if option is not None:
        return option.expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return Path(platformdirs.user_data_dir("automl-tl")) / "data"


def resolve_dataset(name: str, home: Path) -> Path:
    """The folder of a named dataset, or a `UserError` saying how to make it findable."""
    path = home / name
    if not path.exists():
        raise UserError(
            f"dataset {name!r} not found in the data home {home}",
            hint=f"set {ENV_VAR} or --data-home to the folder that holds {name}/, or pass --data PATH",
        )
    return path


def existing_path(path: Path, home: Path, what: str) -> Path:
    """A user path as given, else relative to the data home; a `UserError` when neither exists.

    Torch-free, so the app checks a typed path with the very words the search would use.
    """
    if path.exists():
        return path
    if not path.is_absolute() and (home / path).exists():
        return home / path
    raise UserError(f"{what} {path} does not exist", hint=f"check the path (also looked in the data home {home})")
