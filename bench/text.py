"""Text baselines beside the default automl-tl search (issue #4), on the search's own splits.

Is the search worth its minutes? Against it: TF-IDF + logistic regression (the classic strong
baseline for short texts, seconds on a CPU) and logistic regression on frozen MiniLM features
(what transfer gives without any fine-tuning). Every method is scored once on the same test split.

    .venv/bin/python bench/text.py --dataset sms-spam|banking77 [--limit N] [--json out.json]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: make `bench` importable

import torch  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import FeatureUnion, make_pipeline  # noqa: E402

from bench.common import (  # noqa: E402
    RECIPES,
    Bench,
    Result,
    baseline_parser,
    check_baseline_args,
    finish,
    fit_and_test,
    fit_examples,
    frozen_pooled,
    label_array,
    load_bench,
    logistic_probe,
    maybe_search,
    run_script,
    scored,
)

DATASETS = {"sms-spam": RECIPES / "text-sms-spam.toml", "banking77": RECIPES / "text-banking77.toml"}
TFIDF_C = 10.0
"""Weaker regularisation than scikit-learn's C=1, as usual for sparse n-grams where most terms are rare."""


def tfidf_baseline(bench: Bench) -> Result:
    """Word 1–2 grams + character 2–5 grams (robust to the misspellings and abbreviations of SMS and chat)."""
    start = time.perf_counter()
    features = FeatureUnion([
        ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
    ])
    model = make_pipeline(features, LogisticRegression(C=TFIDF_C, max_iter=2000))
    fit = fit_examples(bench.splits)
    model.fit([str(e.item) for e in fit], label_array(fit))
    predicted = model.predict([str(e.item) for e in bench.splits.test])
    return scored("TF-IDF word 1-2 + char 2-5 grams + LR", bench.splits.test, predicted, time.perf_counter() - start)


def minilm_probes(bench: Bench) -> list[Result]:
    """Logistic regression on frozen MiniLM features: all blocks averaged, and the last block alone.

    One backbone pass serves both, so each row's wall time is that shared pass plus its own fit.
    """
    start = time.perf_counter()
    name = bench.plugin.default_backbone
    pooled = frozen_pooled(bench.plugin.build_backbone(name, bench.options), bench.splits)
    shared = time.perf_counter() - start
    variants = {
        f"LR on {name}, mean of all layers": {s: torch.stack(blocks).mean(0) for s, (blocks, _) in pooled.items()},
        f"LR on {name}, last layer": {s: blocks[-1] for s, (blocks, _) in pooled.items()},
    }
    fit_y = label_array(fit_examples(bench.splits))
    results = []
    for method, features in variants.items():
        fit_start = time.perf_counter()
        fit_x, test_x = fit_and_test(features)
        predicted = logistic_probe(fit_x, fit_y, test_x)
        results.append(scored(method, bench.splits.test, predicted, shared + time.perf_counter() - fit_start,
                              feature_pass_s=shared))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = baseline_parser(__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    args = parser.parse_args(argv)
    check_baseline_args(parser, args)
    recipe = DATASETS[args.dataset]
    search = maybe_search(args, recipe)
    bench = load_bench(recipe, args.limit)
    finish(args, f"text: {args.dataset}", bench, [tfidf_baseline(bench), *minilm_probes(bench)], search,
           dataset=args.dataset)


if __name__ == "__main__":
    run_script(main)
