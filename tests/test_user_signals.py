"""signals: the user's own .npy / .csv signals with a targets CSV, in the layout of the built-in
signal datasets (float [N, T, C], kind "signal", fps and target in info)."""
import numpy as np
import pytest
import torch

from selfsup.config import DataConfig
from selfsup.data import DATASETS, build_data


def sinusoids(n=30, steps=64, fps=16.0, seed=0):
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.5, 4.0, n)
    t = np.arange(steps) / fps
    return np.sin(2 * np.pi * freq[:, None] * t + rng.uniform(0, np.pi, (n, 1))).astype(np.float32), freq


def write_targets(path, columns: dict):
    names = list(columns)
    count = len(columns[names[0]])
    rows = [",".join(names)] + [",".join(repr(float(columns[k][i])) for k in names) for i in range(count)]
    path.write_text("\n".join(rows) + "\n")
    return path


def signals_cfg(root, **kwargs):
    return DataConfig(name="signals", root=str(root), **kwargs)


def test_npy_signals_with_targets_in_the_builtin_signal_layout(tmp_path):
    x, freq = sinusoids()
    np.save(tmp_path / "s.npy", x)
    targets = write_targets(tmp_path / "t.csv", {"freq": freq, "amplitude": np.ones(30)})
    splits = build_data(signals_cfg(tmp_path / "s.npy", fps=16.0, targets=str(targets), test_fraction=0.2,
                                    val_fraction=0.1), seed=0)
    assert splits.kind == "signal" and splits.input_shape == (64, 1) and splits.in_channels == 1
    assert splits.info == {"fps": 16.0, "target": "freq"} and splits.num_classes == 0
    assert len(splits.train) == 24 and len(splits.test) == 6
    assert bool((splits.train.labels == -1).all()) and set(splits.test.targets) == {"freq", "amplitude"}
    # each signal keeps its own target: find every test row among the inputs written
    for row, f in zip(splits.test.inputs, splits.test.targets["freq"]):
        k = int(np.flatnonzero((x == row[:, 0].numpy()).all(1))[0])
        assert abs(float(f) - freq[k]) < 1e-5
    assert splits.test.inputs.dtype == torch.float32


def test_the_test_split_is_seeded(tmp_path):
    np.save(tmp_path / "s.npy", sinusoids()[0])
    build = DATASETS.get("signals").build
    a, b, c = (build(signals_cfg(tmp_path / "s.npy"), seed) for seed in (0, 0, 1))
    assert torch.equal(a.test.inputs, b.test.inputs) and not torch.equal(a.test.inputs, c.test.inputs)


def test_channels_first_arrays_become_time_by_channel(tmp_path):
    x = np.arange(60, dtype=np.float64).reshape(4, 3, 5)  # [N, C, T]
    np.save(tmp_path / "s.npy", x)
    raw = DATASETS.get("signals").build(signals_cfg(tmp_path / "s.npy", test_fraction=0.0), 0)
    assert raw.train.inputs.shape == (4, 5, 3)
    assert torch.equal(raw.train.inputs[2, :, 1], torch.tensor(x[2, 1], dtype=torch.float32))
    assert "fps" not in raw.info and "target" not in raw.info  # no rate given: cycles per step


@pytest.mark.parametrize("header", [True, False])
def test_csv_rows_are_signals_with_or_without_a_header(tmp_path, header):
    x, _ = sinusoids(n=5, steps=8)
    lines = ([",".join(f"t{k}" for k in range(8))] if header else []) + [",".join(map(repr, row.tolist())) for row in x]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    raw = DATASETS.get("signals").build(signals_cfg(tmp_path / "s.csv", test_fraction=0.0), 0)
    assert torch.equal(raw.train.inputs[:, :, 0], torch.from_numpy(x))


@pytest.mark.parametrize("write, message", [
    (lambda p: np.save(p / "s.npy", np.array([[1.0, 2.0], [1.0, np.nan], [0.0, 1.0]])),
     r"signal 1 \(0-based\) holds NaN"),
    (lambda p: np.save(p / "s.npy", np.zeros((3, 2, 2, 2))), r"shape \[3, 2, 2, 2\]; signals must be"),
    (lambda p: (p / "s.csv").write_text("1,2,3\n4,5\n6,7,8\n"), "row 2: 2 values, but the first signal has 3"),
    (lambda p: (p / "s.csv").write_text("1,2,3\n4,x,6\n"), r"row 2, column 2: 'x' is not a finite number"),
])
def test_bad_signal_files_name_the_row(tmp_path, write, message):
    write(tmp_path)
    root = next(tmp_path.iterdir())
    with pytest.raises(ValueError, match=message):
        build_data(signals_cfg(root), seed=0)


def test_object_arrays_are_refused(tmp_path):
    np.save(tmp_path / "s.npy", np.array([[1, "a"], [2, "b"]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a readable .npy array"):
        build_data(signals_cfg(tmp_path / "s.npy"), seed=0)


@pytest.mark.parametrize("text, message", [
    ("freq\n1.0\n2.0\n", "has 2 rows of values for 3 signals"),
    ("1.0\n2.0\n3.0\n", "must start with a header row"),
    ("freq,freq\n1,1\n2,2\n3,3\n", "must name every column once"),
    ("freq\n1.0\nfast\n3.0\n", r"row 3, column 1: 'fast' is not a finite number"),
])
def test_bad_targets_name_the_problem(tmp_path, text, message):
    np.save(tmp_path / "s.npy", np.zeros((3, 4)))
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(ValueError, match=message):
        build_data(signals_cfg(tmp_path / "s.npy", targets=str(tmp_path / "t.csv")), seed=0)


def test_missing_root_and_bad_fps_are_named(tmp_path):
    from selfsup.data import DatasetNotFound

    with pytest.raises(DatasetNotFound, match="is not a file"):
        build_data(signals_cfg(tmp_path / "none.npy"), seed=0)
    np.save(tmp_path / "s.npy", np.zeros((3, 4)))
    with pytest.raises(ValueError, match="data.fps must be a positive"):
        build_data(signals_cfg(tmp_path / "s.npy", fps=-1.0), seed=0)
