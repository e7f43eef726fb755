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


def _all_exactly_s(m: int, s: int) -> torch.Tensor:
    """Every input with exactly s of m features on, (C(m, s), m): expectations over them are exact."""
    idx = torch.combinations(torch.arange(m), s)
    return torch.zeros(len(idx), m).scatter_(1, idx, 1.0)


@pytest.mark.parametrize(("m", "d", "s"), [(6, 5, 2), (7, 9, 3), (6, 20, 2)])
def test_no_superposition_is_exact_on_its_pairs_and_the_prior_elsewhere(m, d, s):
    x = _all_exactly_s(m, s)
    pairs = am.all_pairs(m)
    model = am.no_superposition(m, d, s)
    y, y_hat = am.and_targets(x, pairs), model(x)
    n_exact = min(d, len(pairs))
    torch.testing.assert_close(y_hat[:, :n_exact], y[:, :n_exact], rtol=0, atol=0)
    prior = am.pair_prior(m, s)
    assert prior == pytest.approx(y.mean().item())                 # the probability a pair is on
    torch.testing.assert_close(y_hat[:, n_exact:], torch.full_like(y_hat[:, n_exact:], prior))
    # the mean over every exactly-s input is the expectation: the MSE equals its closed form exactly
    mse = (y_hat - y).pow(2).mean().item()
    assert mse == pytest.approx(float(am.no_superposition_mse(m, d, s)), rel=1e-5, abs=1e-12)
    assert am.structure(model, x)["neurons_used"] == n_exact       # neurons beyond P read nothing


def test_no_superposition_bad_parameters_raise():
    with pytest.raises(ValueError, match="n_active"):
        am.no_superposition(5, 4, 6)
    with pytest.raises(ValueError, match="d_hidden"):
        am.no_superposition(5, 0, 2)


def test_frozen_input_trains_the_readout_only():
    g = torch.Generator().manual_seed(0)
    layer = am.construct("sparse", 8, 32, n_shared=6, generator=g)
    kw = dict(n_steps=80, batch=64, lr=1e-2, seed=0, data_seed=1, progress=False)
    run = am.train(8, 32, 2, loss_powers=(2.0, 8.0), frozen_input=layer, **kw)
    free = am.train(8, 32, 2, loss_powers=(2.0, 8.0), **kw)
    for model in run.models:
        assert torch.equal(model.W_in, layer.W_in) and torch.equal(model.b_in, layer.b_in)
    assert (run.history[-10:].mean(0) < run.history[:10].mean(0)).all()   # the read-out learns
    # same initial read-out and data as the free run: the first step's loss differs only by W_in
    assert not torch.allclose(run.history[0], free.history[0])
    with pytest.raises(ValueError, match="frozen_input"):
        am.train(8, 16, 2, frozen_input=layer, **kw)


def test_superposed_construction_is_the_sparse_one_behind_an_embedding():
    m, d, d0 = 12, 300, 40
    sparse = am.construct("sparse", m, d, n_shared=10, generator=torch.Generator().manual_seed(4))
    sup = am.construct("superposed", m, d, n_shared=10, d_input=d0, generator=torch.Generator().manual_seed(4))
    assert sup.embedding.shape == (d0, m) and sup.W_in.shape == (d, d0)
    torch.testing.assert_close(sup.embedding.norm(dim=0), torch.ones(m))      # unit feature directions
    torch.testing.assert_close(sup.W_in, sparse.W_in @ sup.embedding.T)       # W = B Phi^T (spec §3.1)
    assert torch.equal(sup.W_out, sparse.W_out) and torch.equal(sup.b_in, sparse.b_in)
    x = uand.sample_exactly_s(20, m, 2, torch.Generator().manual_seed(5))
    explicit = torch.relu((x @ sup.embedding.T) @ (sparse.W_in @ sup.embedding.T).T - 1)
    torch.testing.assert_close(sup.hidden(x), explicit)
    # with Phi orthonormal (d0 = m, Phi = identity) the network is the sparse one exactly
    eye = am.MLP(sparse.W_in, sparse.b_in, sparse.W_out, sparse.b_out, torch.eye(m))
    torch.testing.assert_close(eye(x), sparse(x))
    with pytest.raises(ValueError, match="d_input"):
        am.construct("superposed", m, d, generator=torch.Generator())
    with pytest.raises(ValueError, match="d_input"):
        am.construct("sparse", m, d, d_input=d0, generator=torch.Generator())


def test_error_summary_of_known_errors():
    e = am.error_summary(torch.tensor([[0.0, 0.25], [0.75, 1.0]]))
    assert e["mean"] == 0.5 and e["max"] == 1.0 and e["wrong_bits"] == 0.5
    assert e["mse"] == pytest.approx((0.25 ** 2 + 0.75 ** 2 + 1) / 4)
    assert 0.75 < e["q99"] <= e["q999"] <= 1.0
    with pytest.raises(ValueError, match="err"):
        am.error_summary(torch.empty(0))
