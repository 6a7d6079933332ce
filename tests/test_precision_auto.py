"""trainer.precision=auto: resolved once at compose time from the device's bf16 support."""
import pytest

from selfsup.engine import precision
from selfsup.engine.configure import compose_config

CPU = ["data.name=digits", "trainer.accelerator=cpu"]


@pytest.mark.parametrize("supported, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_follows_the_cpu_detection(monkeypatch, supported, expected):
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: supported)
    monkeypatch.setattr(precision, "cuda_supports_bf16", lambda: not supported)  # must not be asked on the CPU
    assert compose_config(None, [*CPU, "trainer.precision=auto"]).trainer.precision == expected


@pytest.mark.parametrize("supported, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_follows_the_cuda_detection(monkeypatch, supported, expected):
    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(precision, "cuda_supports_bf16", lambda: supported)
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: not supported)
    assert precision.auto_precision("auto") == expected
    assert precision.auto_precision("gpu") == expected


def test_the_default_recipe_and_the_defaults_are_auto(monkeypatch):
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: False)
    assert compose_config(None, CPU).trainer.precision == "32-true"
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: True)
    assert compose_config(None, CPU).trainer.precision == "bf16-mixed"
    assert compose_config("contextssl-adult", ["trainer.accelerator=cpu"]).trainer.precision == "32-true"  # its own


def test_an_explicit_precision_is_kept(monkeypatch):
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: True)
    assert compose_config(None, [*CPU, "trainer.precision=32-true"]).trainer.precision == "32-true"


def test_cpu_flags_decide(monkeypatch):
    monkeypatch.setattr(precision.platform, "system", lambda: "Linux")
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"fpu", "avx512f", "avx512_bf16"})
    assert precision.cpu_supports_bf16()
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"fpu", "amx_bf16"})
    assert precision.cpu_supports_bf16()
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"fpu", "avx512f", "avx2"})  # AVX-512 without bf16
    assert not precision.cpu_supports_bf16()


def test_resolved_value_reaches_config_yaml(tmp_path, monkeypatch):
    from selfsup.engine.run import Run

    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: True)
    run = Run(tmp_path / "r", compose_config(None, CPU))
    run.save_config()
    assert "precision: bf16-mixed" in run.config_path.read_text()
