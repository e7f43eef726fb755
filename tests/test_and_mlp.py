import math

import pytest
import torch

from toysup.cis import and_mlp as am, uand


def test_explicit_readoff_matrix_equals_uand_readout_of_sampled_pairs():
    """The (P, d) read-off matrix of the sparse construction and chapter 10's per-pair read-off
    (uand.and_readout on the same weights) are the same numbers."""
    g = torch.Generator().manual_seed(0)
    model = am.construct("sparse", 12, 200, n_shared=10, generator=g)
    x = uand.sample_exactly_s(30, 12, 3, g)
    pairs = am.all_pairs(12)
    values, counts = uand.and_readout(model.hidden(x), model.W_in.bool(),
                                      pairs.expand(30, *pairs.shape))
    torch.testing.assert_close(values, model(x))
    assert counts.shape == (30, 66) and (counts > 0).all()


def test_sparse_bias_matches_closed_form():
    """Spec §2.2: one-on read-off bias (s-1)p, both-on (s-2)p."""
    g = torch.Generator().manual_seed(1)
    m, d, K, s = 40, 4000, 30, 3
    model = am.construct("sparse", m, d, n_shared=K, generator=g)
    x = uand.sample_exactly_s(300, m, s, g)
    pairs = am.all_pairs(m)
    err = model(x) - am.and_targets(x, pairs)
    n_on = x[:, pairs[:, 0]] + x[:, pairs[:, 1]]
    p = math.sqrt(K / d)
    assert abs(err[n_on == 1].mean() / ((s - 1) * p) - 1) < 0.05
    assert abs(err[n_on == 2].mean() / ((s - 2) * p) - 1) < 0.1


def test_dense_construction_is_unbiased():
    g = torch.Generator().manual_seed(2)
    m, d, s = 20, 4000, 3
    model = am.construct("dense", m, d, n_active=s, generator=g)
    x = uand.sample_exactly_s(400, m, s, g)
    pairs = am.all_pairs(m)
    err = model(x) - am.and_targets(x, pairs)
    n_on = x[:, pairs[:, 0]] + x[:, pairs[:, 1]]
    for case in (0, 1, 2):
        e = err[n_on == case]
        assert abs(e.mean()) < 5 * e.std() / math.sqrt(e.numel()) + 0.01, case


def test_dense_gain_closed_forms():
    assert am.dense_gain(2) == pytest.approx(0.5)      # (2 - 0 + 0) / 4
    assert am.dense_gain(3) == pytest.approx(0.25)     # Z = +-1: h = 2, 1/2, 0 -> (2 - 1 + 0) / 4


def test_train_reduces_loss_and_instances_are_independent():
    kw = dict(n_steps=60, batch=64, lr=1e-2, seed=0, data_seed=1, progress=False)
    both = am.train(8, 16, 2, loss_powers=(2.0, 8.0), **kw)
    assert both.history.shape == (60, 2)
    assert (both.history[-10:].mean(0) < both.history[:10].mean(0)).all()
    alone = am.train(8, 16, 2, loss_powers=(2.0,), **kw)
    # instance 0 has the same init and the same data alone or beside others: same trajectory
    torch.testing.assert_close(both.history[:, 0], alone.history[:, 0], rtol=1e-4, atol=1e-5)


def test_error_table_and_structure_of_zero_network():
    m = 6
    pairs = am.all_pairs(m)
    zero = am.MLP(torch.zeros(4, m), torch.zeros(4), torch.zeros(len(pairs), 4),
                  torch.zeros(len(pairs)))
    x = uand.sample_exactly_s(50, m, 2, torch.Generator().manual_seed(0))
    t = am.error_table(zero, x, pairs).set_index("case")
    assert t.loc["both on", "max"] == 1 and t.loc["none on", "max"] == 0
    assert t.loc["all", "mse"] < 0.1          # tiny MSE, every AND wrong (spec §9.2)
    assert am.structure(zero, x)["neurons_used"] == 0


def test_bad_parameters_raise():
    g = torch.Generator()
    with pytest.raises(ValueError, match="n_shared"):
        am.construct("sparse", 5, 10, n_shared=20, generator=g)
    with pytest.raises(ValueError, match="kind"):
        am.construct("bilinear", 5, 10, generator=g)
    with pytest.raises(ValueError, match="loss_powers"):
        am.train(5, 4, 2, loss_powers=(0.5,), n_steps=1, progress=False)
    with pytest.raises(ValueError, match="n_features"):
        am.all_pairs(1)
    with pytest.raises(ValueError, match="max_entries"):
        am.readoff_matrix("sparse", torch.ones(10, 10), am.all_pairs(10), max_entries=5)


def test_dense_noise_theory_matches_simulation():
    g = torch.Generator().manual_seed(3)
    m, d, s = 16, 1000, 3
    model = am.construct("dense", m, d, n_active=s, generator=g)
    x = uand.sample_exactly_s(500, m, s, g)
    pairs = am.all_pairs(m)
    err = model(x) - am.and_targets(x, pairs)
    none = err[(x[:, pairs[:, 0]] + x[:, pairs[:, 1]]) == 0]
    rms = none.pow(2).mean().sqrt().item()
    assert abs(rms / am.dense_noise_theory(s, d) - 1) < 0.1


def test_construction_theory_table_within_ten_percent():
    x = uand.sample_exactly_s(300, 24, 2, torch.Generator().manual_seed(0))
    t = am.construction_theory(24, [256, 1024], 2, x, net_seeds=(0, 1, 2))
    assert ((t["sparse_bias"] / t["sparse_theory"] - 1).abs() < 0.1).all(), t
    assert ((t["dense_rms"] / t["dense_theory"] - 1).abs() < 0.1).all(), t


def test_compare_scores_every_named_network_on_the_same_inputs():
    x = uand.sample_exactly_s(100, 10, 2, torch.Generator().manual_seed(0))
    networks = am.constructions(10, [64, 256], n_active=2, n_shared=8, seed=0)
    assert [(name, d) for name, d, _ in networks] == [("sparse U-AND", 64), ("dense U-AND", 64),
                                                     ("sparse U-AND", 256), ("dense U-AND", 256)]
    summary, by_case = am.compare(networks, x)
    assert list(summary["network"]) == [name for name, _, _ in networks]
    assert len(by_case) == 4 * len(networks)                  # both, one, none on and all
    direct = am.error_table(networks[0][2], x, am.all_pairs(10)).set_index("case")
    assert summary.loc[0, "max"] == direct.loc["all", "max"]
