"""Run names tell runs apart: a task's label (csv: its file and target), not only its name."""

from pathlib import Path

from conftest import runs_of

from seqlab.train import train


def _series(path: Path, rows: int = 300) -> Path:
    path.write_text("t,a,b\n" + "".join(f"{i},{(i * 7) % 11},{i % 5}\n" for i in range(rows)))
    return path


def test_csv_runs_on_different_files_and_targets_get_different_names(make_cfg, client, tmp_path):
    cfg = make_cfg("task=csv", f"task.path={_series(tmp_path / 'load.csv')}", "task.target=a")
    train(cfg)
    train(
        make_cfg(
            "task=csv",
            f"task.path={_series(tmp_path / 'price.csv')}",
            "task.target=b",
            f"tracking.experiment={cfg.tracking.experiment}",
        )
    )
    names = [run.info.run_name for run in runs_of(client, cfg.tracking.experiment)]
    assert names == ["lstm-csv-load-a-s0", "lstm-csv-price-b-s0"]
