"""The report's domain-adaptation section: both models' scores, per-class changes, the projection, and its limits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from automl_tl.leaderboard import Leaderboard
from automl_tl.report.adaptation import head_features, principal_components

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def adapted_run(toy, run_cli, write_recipe, fast_recipe, domains, toy_rows, tmp_path) -> Path:
    """A toy search with a target and a labelled target test set whose choice (seeded) is an adapted trial."""
    recipe = fast_recipe.replace('strategy = ["feature_extraction", "partial"]\n', "") + 'adaptation = ["none", "statistics", "coral", "dann"]\n'
    source = toy_rows(tmp_path / "source.json", seed=0, n_per_class=30)  # a test split of more than a few examples
    code, out, err = run_cli("search", "-m", "toy", "-r", write_recipe(recipe), "--data", source, "--target", domains["target"],
                             "--target-test", domains["target_test"], "-n", "6", "--run-dir", "run")
    assert code == 0, err + out
    return tmp_path / "run"


def test_a_domain_adaptation_report_compares_the_source_only_and_the_chosen_model(adapted_run, run_cli, tmp_path):
    code, out, err = run_cli("report", adapted_run, "--out", "out/report.md")
    assert code == 0, err
    page = (tmp_path / "out" / "report.md").read_text()
    board = Leaderboard.of_run(adapted_run)
    test = json.loads((adapted_run / "test.json").read_text())
    before, after = board.source_only, board.chosen
    assert before is not None and after is not None
    assert before.params["adaptation"] == "none" and after.params["adaptation"] != "none"  # what this seeded search chooses
    section = page[page.index("## Domain adaptation"):page.index("## Environment and reproducibility")]
    metric = "macro_f1"
    assert (f"source validation {metric} {before.scores[metric]:.4f} → {after.scores[metric]:.4f}".replace("_", "\\_")
            in section)

    # both models' validation scores, and the target test scores labelled evaluation only
    table = [line.strip("| ").split(" | ") for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    header, rows = table[0], {row[0]: row for row in table[1:4]}
    assert header[3:] == ["source val macro\\_f1", "im on the unlabelled target", "target test accuracy (eval only)",
                          "target test macro-F1 (eval only)"]
    assert rows["before: source only"][1:] == [str(before.trial), "source only", f"{before.scores[metric]:.4f}", f"{before.score:.4f}",
                                               f"{before.target_test['accuracy']:.4f}", f"{before.target_test[metric]:.4f}"]
    assert rows["after: chosen, as searched"][1] == str(after.trial) and rows["after: chosen, as searched"][4] == f"{after.score:.4f}"
    assert test["ensemble"] == "refit and own"  # the chosen trial's own weights were kept: the delivered model averages both
    delivered = rows["after: chosen, refit on train+validation, averaged with the trial's own model (trained on train) (delivered)"]
    assert delivered[1] == str(after.trial) and delivered[-2:] == [f"{test['target']['accuracy']:.4f}", f"{test['target'][metric]:.4f}"]

    # per class on the target test set: every class, before and after
    for name, scores in test["target"]["per_class"].items():
        old = before.target_test["per_class"][name]
        assert f"| {name} | {old['recall']:.3f} | {scores['recall']:.3f} | {old['f1']:.3f} | {scores['f1']:.3f} |" in section

    # the projection, as a PNG beside the page
    image = re.search(r"!\[[^\]]*\]\((report-\d+-adaptation-projection\.png)\)", section)
    assert image is not None
    assert (tmp_path / "out" / image.group(1)).read_bytes().startswith(PNG)


def test_a_run_whose_data_is_gone_still_reports_its_scores_and_says_why_there_is_no_projection(adapted_run, run_cli, domains, tmp_path):
    domains["target"].unlink()
    code, out, err = run_cli("report", adapted_run, "--out", "report.md")
    assert code == 0, err
    assert "Traceback" not in out + err
    section = (tmp_path / "report.md").read_text().split("## Domain adaptation")[1]
    assert "| before: source only |" in section
    said = section.replace("\\_", "_")  # Markdown escapes the underscores a temporary folder's name may hold
    assert f"_The feature projection is not drawn: target path {domains['target']} does not exist._" in said
    assert "adaptation-projection" not in section


def test_the_projection_places_target_examples_where_the_adapted_head_reads_them(toy, run_cli, write_recipe, fast_recipe, domains, tmp_path):
    """A `statistics` model maps target features onto the source's: the two domains' means meet after, not before."""
    recipe = fast_recipe.replace('strategy = ["feature_extraction", "partial"]', 'strategy = "feature_extraction"') + 'adaptation = ["statistics"]\n'
    code, out, err = run_cli("search", "-m", "toy", "-r", write_recipe(recipe), "--data", domains["source"],
                             "--target", domains["target"], "-n", "1", "--run-dir", "run")
    assert code == 0, err + out
    seen: list[str] = []
    features = head_features(tmp_path / "run", seen.append)
    assert any("frozen backbone pass" in s for s in seen)
    assert {len(f) for f in features["before"].values()} == {36}  # the 36 source test and 36 target examples

    def gap(panel: dict[str, np.ndarray]) -> float:
        return float(np.linalg.norm(panel["source"].mean(0) - panel["target"].mean(0)) / panel["source"].std(0).mean())

    assert gap(features["after"]) < 0.5 * gap(features["before"])


def test_principal_components_keep_each_domain_apart_along_the_direction_that_separates_them():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(50, 6))
    target = rng.normal(size=(40, 6)) + np.array([5.0, 0, 0, 0, 0, 0])
    points, explained = principal_components({"source": source, "target": target})
    assert points["source"].shape == (50, 2) and points["target"].shape == (40, 2)
    assert explained[0] > 0.5 and explained.sum() == pytest.approx(1.0)
    assert abs(points["source"][:, 0].mean() - points["target"][:, 0].mean()) > 4.0
