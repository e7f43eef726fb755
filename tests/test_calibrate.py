import json

import pytest
import torch

from toysup.persian_rug import calibrate

CPU = torch.device("cpu")


def test_the_crossover_is_measured_once_per_key_and_read_back_by_later_processes(tmp_path, monkeypatch, capsys):
    """The first call measures and stores; a later process (the cache cleared) reads the stored
    value without measuring; another thread count is another key and measures again."""
    calls = []
    monkeypatch.setattr(calibrate, "measure", lambda device: calls.append(device) or 0.123)
    calibrate.crossover.cache_clear()
    assert calibrate.crossover(CPU, tmp_path) == 0.123 and calls == [CPU]
    assert "measured now" in capsys.readouterr().out
    calibrate.crossover.cache_clear()
    monkeypatch.setattr(calibrate, "measure", lambda device: pytest.fail("measured a second time"))
    assert calibrate.crossover(CPU, tmp_path) == 0.123
    assert "read from" in capsys.readouterr().out
    (stored,) = tmp_path.glob("*.json")
    record = json.loads(stored.read_text())
    assert record["crossover"] == 0.123 and record["threads"] == torch.get_num_threads()
    threads = torch.get_num_threads()
    calibrate.crossover.cache_clear()
    monkeypatch.setattr(calibrate, "measure", lambda device: 0.05)
    try:
        torch.set_num_threads(threads + 1)
        assert calibrate.crossover(CPU, tmp_path) == 0.05
    finally:
        torch.set_num_threads(threads)
        calibrate.crossover.cache_clear()
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_the_measured_crossover_is_a_fraction_within_its_range():
    """A smoke test, not evidence: a real measurement at the probe shape runs on this device and gives
    a number in [0, MAX_CROSSOVER], which the clipping guarantees (its value depends on the CPU, see
    the module docstring; timings are never asserted)."""
    value = calibrate.measure(CPU)
    assert 0.0 <= value <= calibrate.MAX_CROSSOVER
