"""The live view: what a user watching a search sees, and what it leaves if they stop it."""

from __future__ import annotations

from rich.console import Console

from automl_tl.progress import SearchDisplay


def render(display: SearchDisplay) -> str:
    console = Console(record=True, width=200)
    console.print(display.__rich__())
    return console.export_text()


def test_the_live_view_names_the_usable_model_from_the_first_completed_trial_on():
    display = SearchDisplay(Console(width=200), n_trials=8, timeout=None, done=0, objective="accuracy", run_dir="runs/[x]")
    assert "usable model" not in render(display)
    display.trial_finished(0, "probe", 0.80, "complete", (0.80, 0), 1)
    display.trial_finished(1, "partial", 0.85, "pruned", (0.80, 0), 2)  # a pruned trial leaves no model
    assert "usable model: trial 0 (automl-tl predict runs/[x] FILE...)" in render(display)
    display.trial_finished(2, "full", 0.90, "complete", (0.90, 2), 3)
    display.trial_finished(3, "worse", 0.70, "complete", (0.90, 2), 4)
    assert "usable model: trial 2" in render(display)
    display.trial_finished(6, "worse", 0.60, "complete", (0.95, 4), 7)  # trials 4 and 5 finished on another worker
    text = render(display)
    assert "usable model: trial 4" in text and "7/8" in text  # the study's count, not this worker's five


def test_a_trials_epoch_that_beats_every_completed_trial_is_named_until_the_trial_ends():
    display = SearchDisplay(Console(width=200), n_trials=8, timeout=None, done=0, objective="accuracy", run_dir="runs/x")
    display.trial_finished(0, "probe", 0.80, "complete", (0.80, 0), 1)
    display.checkpoint(1, 2)
    assert "usable model: trial 1 at epoch 2, still training (automl-tl predict runs/x FILE...)" in render(display)
    display.trial_finished(1, "partial", 0.78, "pruned", (0.80, 0), 2)  # its checkpoint goes with it
    assert "usable model: trial 0 (automl-tl predict" in render(display)


def test_work_after_the_trials_shows_a_bar_in_a_terminal_and_a_line_per_step_in_a_log():
    """Fold models take minutes: a terminal shows a bar of the count (other processes' work included), a log a line
    each time it grows, never twice for one count."""
    import io

    from automl_tl.progress import counted

    terminal = Console(file=io.StringIO(), force_terminal=True, width=120)
    with counted(terminal, "cross-validating trials 3, 7", "fold models", 4) as progress:
        progress(2)
        progress(4)
    shown = terminal.file.getvalue()
    assert "fold models" in shown and "4/4" in shown and "fold models 2/4" not in shown  # the bar's frames, not log lines
    log = Console(file=io.StringIO(), force_terminal=False, width=120)
    with counted(log, "cross-validating trials 3, 7", "fold models", 4) as progress:
        for done in (0, 2, 2, 3, 4):
            progress(done)
    assert log.file.getvalue().splitlines() == ["cross-validating trials 3, 7", "fold models 2/4", "fold models 3/4", "fold models 4/4"]
    many = Console(file=io.StringIO(), force_terminal=False, width=120)
    with counted(many, "refitting", "refit batches", 95) as progress:
        for done in range(1, 96):
            progress(done)
    assert many.file.getvalue().splitlines()[1:] == [f"refit batches {n}/95" for n in (*range(10, 95, 10), 95)]
