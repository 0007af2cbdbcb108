"""An oracle on the very target test sentences an adapting search is scored on (issue #19).

    python bench/oracle.py uci-sentiment/yelp_labelled.txt --folds 5 --timeout 300 --out DIR

An adapting search is tested transductively, on every labelled target sentence; an oracle trained
on labelled target data cannot be tested on the sentences it trained on. So the labelled file
(``sentence<TAB>label`` lines, the UCI sentiment format; relative to the data home) is cut into
``--folds`` stratified folds (seed 0), and for each fold the default text search
(`automl-tl search --modality text --objective accuracy --timeout T`) trains on the other folds and
is tested once on it. Every sentence is then predicted by a model that never saw it; the pooled
accuracy over all folds is the oracle's score on the whole file, comparable with the adapting
search's target test accuracy on the same file.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="a labelled text file, sentence<TAB>label per line (relative to the data home)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--timeout", type=int, default=300, help="each fold's search budget, seconds")
    parser.add_argument("--out", type=Path, required=True, help="where the folds' files and runs go (not the repository)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from automl_tl.datahome import data_home
    from automl_tl.errors import UserError
    from automl_tl.search.inputs import environment

    path = Path(args.data) if Path(args.data).is_absolute() else data_home() / args.data
    if not path.is_file():
        raise UserError(f"no labelled text file at {path}", hint="a sentence<TAB>label file, relative to the data home")
    folds = stratified_folds([line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()], args.folds)
    results = []
    for k in range(args.folds):
        folder = args.out / f"fold-{k}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "train.txt").write_text("\n".join(line for j, fold in enumerate(folds) if j != k for line in fold) + "\n", encoding="utf-8")
        (folder / "test.txt").write_text("\n".join(folds[k]) + "\n", encoding="utf-8")
        code = subprocess.run([sys.executable, "-m", "automl_tl", "search", "--modality", "text", "--data", str(folder / "train.txt"),
                               "--test", str(folder / "test.txt"), "--objective", "accuracy", "--timeout", str(args.timeout),
                               "--run-dir", str(folder / "run")]).returncode
        if code != 0:
            raise UserError(f"fold {k}'s search exited with code {code}", hint="its own output, above, says why")
        test = json.loads((folder / "run" / "test.json").read_text())
        results.append({"fold": k, "n": test["n"], "accuracy": test["accuracy"], "chosen": test.get("chosen")})
        print(f"fold {k}: accuracy {test['accuracy']:.4f} on {test['n']} sentences", flush=True)
    correct = sum(round(r["accuracy"] * r["n"]) for r in results)
    total = sum(r["n"] for r in results)
    print(f"oracle, every sentence predicted by a model that never saw it: accuracy {correct / total:.4f} ({correct}/{total})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"environment": environment(), "data": args.data, "timeout": args.timeout,
                                         "accuracy": correct / total, "folds": results}, indent=2) + "\n", encoding="utf-8")


def stratified_folds(lines: list[str], k: int) -> list[list[str]]:
    """``lines`` dealt into ``k`` folds class by class (the label after the last tab), shuffled with seed 0."""
    by_label: dict[str, list[str]] = {}
    for line in lines:
        by_label.setdefault(line.rsplit("\t", 1)[-1].strip(), []).append(line)
    folds: list[list[str]] = [[] for _ in range(k)]
    rng = random.Random(0)
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        for i, line in enumerate(members):
            folds[i % k].append(line)
    return folds


if __name__ == "__main__":
    from bench.common import run_script

    run_script(main)
