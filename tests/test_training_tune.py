"""``emotiond tune``: a KerasTuner search over a preset's [tune.space] on the synthetic faces, a results table,
and a best preset that ``emotiond train`` accepts and trains."""

from __future__ import annotations

import csv
import json
import math
import tomllib
from pathlib import Path

import pytest

from emotiond.__main__ import main
from emotiond.core.settings import shipped_config
from emotiond.training.config import load_config
from emotiond.training.tune import check_space

from support.training import synthetic_dir, tiny_dir

pytestmark = pytest.mark.model  # runs a neural network in the test process: make check leaves it out

SPACE = """
[tune.space]
"train.learning_rate" = { min = 1e-4, max = 1e-2, sampling = "log" }
"train.batch_size" = { values = [16, 32] }
"train.optimizer" = { values = ["adam", "adamw"] }
"model.lenet.dropout" = { min = 0.0, max = 0.5 }
"model.lenet.filters" = { values = [[4, 8], [8, 16]] }
"model.lenet.kernel_size" = { min = 3, max = 5, step = 2 }
"augment.rotation" = { min = 0.0, max = 15.0 }
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp()


def _preset(path: Path, algorithm: str, objective: str = "val_accuracy", space: str = SPACE) -> Path:
    path.write_text(f"""
name = "tuned"
seed = 5
[data]
image_size = 32
val_fraction = 0.2
[model]
arch = "lenet"
[model.lenet]
dense = [32]
[train]
epochs = 2
verbose = 0
tensorboard = false
[export]
with_tflite = false
[tune]
algorithm = "{algorithm}"
objective = "{objective}"
max_epochs = 3
early_stopping_patience = 1
{space}""")
    return path


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_hyperband_search_writes_results_and_a_best_preset_that_trains(
        base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tune"
    preset = _preset(tmp_path / "search.toml", "hyperband")
    assert main(["tune", "--config", str(preset), "--data", str(synthetic_dir(base)), "--trials", "3",
                 "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = _rows(out)
    assert len(rows) == summary["trials"] == 3
    assert all(row["status"] == "COMPLETED" and row["val_accuracy"] for row in rows)
    scores = [float(row["val_accuracy"]) for row in rows]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) > 1  # best first, and not all tied
    for row in rows:  # every trial drew its values from the space
        assert 1e-4 <= float(row["train.learning_rate"]) <= 1e-2
        assert row["train.batch_size"] in ("16", "32") and row["train.optimizer"] in ("adam", "adamw")
        assert json.loads(row["model.lenet.filters"]) in ([4, 8], [8, 16])
        assert row["model.lenet.kernel_size"] in ("3", "5")
        assert 0.0 <= float(row["augment.rotation"]) <= 15.0
    assert len({row["train.learning_rate"] for row in rows}) == 3
    assert (out / "results.md").read_text().count("| COMPLETED |") == 3

    best = tomllib.loads((out / "best.toml").read_text())
    assert "tune" not in best
    assert math.isclose(best["train"]["learning_rate"], float(rows[0]["train.learning_rate"]), rel_tol=1e-3)
    assert best["model"]["lenet"]["filters"] == json.loads(rows[0]["model.lenet.filters"])
    assert best["train"]["batch_size"] == int(rows[0]["train.batch_size"])
    assert summary["best"]["train.optimizer"] == best["train"]["optimizer"] == rows[0]["train.optimizer"]
    assert best["data"]["path"] == str(synthetic_dir(base))

    assert main(["train", "--config", str(out / "best.toml"), "--epochs", "1"]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Path(trained["bundle"], "bundle.json").is_file()
    run = json.loads((Path(trained["run_dir"]) / "run.json").read_text())
    assert run["arch"] == "lenet" and run["state"] == {"stage": 1, "epochs_done": 1}


def test_bayesian_search_ranks_by_lowest_loss(base: Path, tmp_path: Path) -> None:
    out = tmp_path / "tune"
    space = '[tune.space]\n"train.learning_rate" = { min = 1e-4, max = 1e-2, sampling = "log" }\n'
    preset = _preset(tmp_path / "search.toml", "bayesian", objective="val_loss", space=space)
    assert main(["tune", "--config", str(preset), "--data", str(tiny_dir(base)), "--trials", "2",
                 "--out", str(out)]) == 0
    rows = _rows(out)
    assert len(rows) == 2 and all(row["epochs"] == "3" for row in rows)
    losses = [float(row["val_loss"]) for row in rows]
    assert losses == sorted(losses)
    best = tomllib.loads((out / "best.toml").read_text())
    assert math.isclose(best["train"]["learning_rate"], float(rows[0]["train.learning_rate"]), rel_tol=1e-3)


def test_bad_search_spaces_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        '[tune.space]\n"train.learning_rte" = { min = 0.1, max = 0.2 }\n': "train.learning_rte: unknown key",
        '[tune.space]\n"train.batch_size" = { values = [0, 32] }\n': "tune.space.train.batch_size = 0",
        '[tune.space]\n"train.epochs" = { min = 5 }\n': "a range needs min < max",
        "": "no search space",
    }
    for space, message in cases.items():
        preset = _preset(tmp_path / "bad.toml", "hyperband", space=space)
        assert main(["tune", "--config", str(preset), "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert message in err, err
    assert not (tmp_path / "o").exists()


def test_every_shipped_search_space_is_valid() -> None:
    searched = []
    for preset in sorted(shipped_config("training").glob("*.toml")):
        cfg = load_config(preset)
        if cfg.tune.space:
            check_space(cfg)
            searched.append(preset.stem)
    assert {"fer2013-cnn4", "fer2013-vit-small", "fer2013-inception-v3", "fer2013-efficientnet-b4"} <= set(searched)
