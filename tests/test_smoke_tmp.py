def test_smoke(toy, run_cli):
    code, out, err = run_cli("search", "--modality", "toy", "--n-trials", "8", "--seed", "0")
    print(out); print(err)
    assert code == 0
    code, out, err = run_cli("leaderboard", "runs/toy-default", "--format", "markdown")
    print(out, err)
