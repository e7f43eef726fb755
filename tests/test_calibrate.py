import json

import pytest
import torch

from toysup.persian_rug import calibrate, data

CPU = torch.device("cpu")
SHAPE = (2, 64, 40, 8)       # (k, batch, n, m)


def test_each_shape_is_measured_once_per_key_and_read_back_by_later_processes(tmp_path, monkeypatch, capsys):
    """The first call for a shape measures and stores; a later process (the cache cleared) reads it
    without measuring; another shape is measured and added to the same file; another thread count
    is another key, another file."""
    calls = []
    monkeypatch.setattr(calibrate, "measure",
                        lambda device, shape: calls.append(shape) or {"output": 0.123, "transpose": 0.2})
    calibrate.thresholds.cache_clear()
    assert calibrate.thresholds(CPU, *SHAPE, root=tmp_path) == calibrate.Thresholds(0.123, 0.2)
    assert calls == [SHAPE] and "measured now" in capsys.readouterr().out
    calibrate.thresholds.cache_clear()
    monkeypatch.setattr(calibrate, "measure", lambda device, shape: pytest.fail("measured a second time"))
    assert calibrate.thresholds(CPU, *SHAPE, root=tmp_path) == calibrate.Thresholds(0.123, 0.2)
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(calibrate, "measure", lambda device, shape: {"output": 0.0, "transpose": 0.1})
    assert calibrate.thresholds(CPU, 1, 64, 40, 8, root=tmp_path) == calibrate.Thresholds(0.0, 0.1)
    (stored,) = tmp_path.glob("*.json")
    record = json.loads(stored.read_text())
    assert record["shapes"] == {"2,64,40,8": {"output": 0.123, "transpose": 0.2},
                                "1,64,40,8": {"output": 0.0, "transpose": 0.1}}
    assert record["threads"] == torch.get_num_threads()
    threads = torch.get_num_threads()
    calibrate.thresholds.cache_clear()
    try:
        torch.set_num_threads(threads + 1)
        assert calibrate.thresholds(CPU, *SHAPE, root=tmp_path) == calibrate.Thresholds(0.0, 0.1)
    finally:
        torch.set_num_threads(threads)
        calibrate.thresholds.cache_clear()
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_the_measured_crossovers_are_fractions_within_their_range():
    """A smoke test, not evidence: a real measurement at a small shape runs on this device and gives
    two numbers in [0, MAX_CROSSOVER], which the clipping guarantees (the values depend on the CPU
    and the shape, see the module docstring; timings are never asserted)."""
    measured = calibrate.measure(CPU, (2, 256, 128, 32))
    assert set(measured) == {"output", "transpose"}
    assert all(0.0 <= value <= calibrate.MAX_CROSSOVER for value in measured.values())


@pytest.mark.parametrize("n", [4999, 5000, 20_000, 32_767, 32_768, 40_000])
def test_the_padded_sort_gives_torchs_stable_order(n):
    """data.stable_order pads keys between RADIX_PAD and RADIX_MIN: the permutation must be torch's
    stable one exactly, ties included (many equal keys), or the sparse products would sum the
    entries in another order and the gradients would differ in the last bits."""
    key = torch.randint(0, 300, (n,), generator=torch.Generator().manual_seed(n), dtype=torch.int32)
    assert torch.equal(data.stable_order(key), torch.sort(key, stable=True).indices)
