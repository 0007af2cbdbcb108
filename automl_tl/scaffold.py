"""`automl-tl plugins new`: a new plugin package, written from the templates in ``automl_tl/templates``.

A template is a folder laid out as the package will be (``package/`` becomes ``automl_tl_<name>/``);
``{{name}}`` and ``{{Class}}`` in file contents are replaced. What it writes installs with
``pip install -e``, passes ``automl-tl plugins check`` and runs a search as it is, so an author
starts from working code and changes one part at a time.
"""

from __future__ import annotations

import re
from pathlib import Path

from automl_tl.errors import UserError

TEMPLATES = Path(__file__).parent / "templates"
NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def templates() -> list[str]:
    return sorted(p.name for p in TEMPLATES.iterdir() if p.is_dir())


def write_plugin(name: str, like: str, into: Path) -> Path:
    """Write the plugin ``name`` from template ``like`` into ``into/automl-tl-<name>``; returns that folder."""
    if not NAME.fullmatch(name):
        raise UserError(f"plugin name {name!r} is not a lowercase Python identifier", hint="e.g. sensors, eeg, lidar_2d")
    if like not in templates():
        raise UserError(f"no template {like!r}", hint=f"available: {', '.join(templates())}")
    target = into / f"automl-tl-{name.replace('_', '-')}"
    if target.exists():
        raise UserError(f"{target} already exists", hint="choose another name or folder (--into)")
    words = {"{{name}}": name, "{{Class}}": "".join(part.title() for part in name.split("_"))}
    source = TEMPLATES / like
    for path in sorted(source.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(source).as_posix().replace("package/", f"automl_tl_{name}/", 1)
        text = path.read_text(encoding="utf-8")
        for placeholder, value in words.items():
            text = text.replace(placeholder, value)
        out = target / relative
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    return target
