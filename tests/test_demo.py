"""`make demo` picks the packaged recipe that fits the machine and says why."""

from cai_bootstrap import demo
from cai_bootstrap.config import load_recipe


def test_cuda_picks_the_gpu_recipe(monkeypatch):
    monkeypatch.setattr(demo, "cuda_available", lambda: True)
    path, why = demo.choose_recipe(demo.cuda_available())
    assert path.name == "gpu-gemma-270m.yaml" and "CUDA is available" in why
    assert load_recipe(path).stages[0].instructions.n_heldout >= 500
    assert load_recipe(path).stages[0].max_rounds >= 3


def test_no_cuda_picks_the_quickstart(monkeypatch):
    monkeypatch.setattr(demo, "cuda_available", lambda: False)
    path, why = demo.choose_recipe(demo.cuda_available())
    assert path.name == "quickstart.yaml" and "no CUDA" in why


def test_main_prints_the_choice_and_runs_it(monkeypatch, capsys):
    monkeypatch.setattr(demo, "cuda_available", lambda: False)
    seen = {}

    def fake_cli():
        import sys

        seen["argv"] = list(sys.argv)

    monkeypatch.setattr("cai_bootstrap.cli.main", fake_cli)
    demo.main(["--quiet"])
    assert "demo: recipe quickstart.yaml (no CUDA device" in capsys.readouterr().out
    assert seen["argv"][1:3] == ["run", "--recipe"] and seen["argv"][3].endswith("quickstart.yaml")
    assert seen["argv"][-1] == "--quiet"
