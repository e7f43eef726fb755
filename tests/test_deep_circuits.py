import math

import pytest
import torch

from toysup.cis import deep_circuits as dc, uand


def _small(seed=1, depth=4, gate_prob=0.2):
    circuit = dc.random_circuit(30, depth, gate_prob=gate_prob, first_copy=False,
                                generator=torch.Generator().manual_seed(seed))
    return circuit, dc.DeepConfig(d_or=60, d_and=80, n_shared=6)


@pytest.mark.parametrize("network", dc.NETWORKS)
def test_factored_forward_equals_explicit_mlp(network):
    """Spec §9.12: the factored code is a genuine ReLU MLP with fixed weights."""
    circuit, config = _small()
    x0, _ = dc.sparse_inputs(circuit, 20, 2, generator=torch.Generator().manual_seed(0))
    fact, _ = dc.run_network(circuit, config, x0, network=network, dtype=torch.float64)
    Ws, bs, Rs = dc.explicit_mlp(circuit, config, network=network)
    expl = dc.explicit_forward(Ws, bs, Rs, x0)
    torch.testing.assert_close(fact, expl, rtol=1e-9, atol=1e-9)
    hidden = 2 * (60 + 80) if network == "ec" else 60 + 80
    assert Ws[0].shape == (hidden, 30) and Ws[1].shape == (hidden, hidden)


def test_circuit_gates_and_partner_differs():
    circuit, _ = _small(depth=3)
    assert (circuit.partner != circuit.perm).all()
    x0 = uand.sample_exactly_s(50, 30, 3, torch.Generator().manual_seed(0))
    g = dc.evaluate_circuit(circuit, x0)
    l = 1
    a, b = g[l][:, circuit.perm[l]], g[l][:, circuit.partner[l]]
    t = circuit.gate_type[l]
    assert torch.equal(g[l + 1][:, t == dc.AND], (a & b)[:, t == dc.AND])
    assert torch.equal(g[l + 1][:, t == dc.OR], (a | b)[:, t == dc.OR])
    assert torch.equal(g[l + 1][:, t == dc.COPY], a[:, t == dc.COPY])


def test_first_layer_is_a_permutation_and_inputs_are_kept_sparse():
    circuit = dc.random_circuit(40, 6, gate_prob=0.2, generator=torch.Generator().manual_seed(0))
    assert (circuit.gate_type[0] == dc.COPY).all()
    assert torch.equal(circuit.perm[0].sort().values, torch.arange(40))
    x0, g = dc.sparse_inputs(circuit, 64, 3, generator=torch.Generator().manual_seed(1))
    assert (x0.sum(1) == 3).all() and g.shape == (7, 64, 40)
    assert (g.sum(2) <= 6).all() and (g[1].sum(1) == 3).all()


def test_ec_is_exact_when_noise_is_below_margin():
    """One active feature, large pools: clipped units are exact bits, so no read-off is wrong and
    the error is only the spurious-firing rate (about (s-1)p + sK/d_or, here < 0.2)."""
    circuit = dc.random_circuit(20, 5, gate_prob=0.2, generator=torch.Generator().manual_seed(3))
    config = dc.DeepConfig(d_or=2000, d_and=4000, n_shared=30)
    x0, truth = dc.sparse_inputs(circuit, 16, 1, generator=torch.Generator().manual_seed(0))
    values, empty = dc.run_network(circuit, config, x0)
    errors = dc.layer_errors(values, truth)
    assert empty == 0 and errors["max"].max() < 0.2 and errors["ber"].max() == 0


def test_and_noise_matches_theory_within_ten_percent():
    g = torch.Generator().manual_seed(0)
    sigma = dc.and_noise(500, 2000, n_shared=16, n_active=3, n_inputs=64, generator=g)
    theory = dc.and_noise_theory(500, 2000, 16, 3)
    assert abs(sigma / theory - 1) < 0.1, (sigma, theory)
    assert math.isclose(theory, math.sqrt(3 * 4 * 500 / 2000 ** 1.5))


def test_capacity_fit_recovers_exact_power_law():
    import pandas as pd
    rows = [{"m": m, "d": d, "var": 0.01 * m / d ** 1.5} for m in (100, 400) for d in (1000, 4000)]
    fit = dc.capacity_fit(pd.DataFrame(rows), 0.1)
    assert abs(fit.slope_m - 1) < 1e-9 and abs(fit.slope_d + 1.5) < 1e-9
    assert abs(fit.m_max_law.slope - 1.5) < 1e-9
    # sigma^2 = 0.01 m / d^1.5 = 0.1^2  <=>  m = d^1.5
    assert fit.d.tolist() == [1000, 4000]
    assert fit.m_max == pytest.approx(fit.d ** 1.5, rel=1e-9)


def test_bad_parameters_raise():
    g = torch.Generator()
    with pytest.raises(ValueError, match="gate_prob"):
        dc.random_circuit(10, 2, gate_prob=0.7, generator=g)
    with pytest.raises(ValueError, match="n_features"):
        dc.random_circuit(1, 2, generator=g)
    with pytest.raises(ValueError, match="margin"):
        dc.DeepConfig(d_or=10, d_and=10, n_shared=2, margin=0.5)
    with pytest.raises(ValueError, match="n_shared"):
        dc.DeepConfig(d_or=10, d_and=10, n_shared=20)
    with pytest.raises(ValueError, match="network"):
        dc.DeepConfig(d_or=10, d_and=10, n_shared=2).thresholds("ecc")
    with pytest.raises(ValueError, match="n_active"):
        uand.sample_exactly_s(3, 5, 6, g)
    circuit, config = _small()
    with pytest.raises(ValueError, match="max_hidden"):
        dc.explicit_mlp(circuit, config, max_hidden=10)


def _twins(seed=1, depth=4, n_signals=15, gate_prob=0.15, twin_and_prob=0.2):
    return dc.twin_circuit(n_signals, depth, gate_prob=gate_prob, twin_and_prob=twin_and_prob,
                           first_copy=False, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("network", dc.NETWORKS)
def test_sparse_wiring_forward_equals_dense_explicit_mlp(network):
    """The sparse evaluation (CSR wiring, read-off sets from per-gate lists) is the same ReLU MLP as
    the dense explicit forward pass built from the same connections, with ANDs that fire (s = 2)."""
    circuit, config = _twins(), dc.DeepConfig(d_or=60, d_and=80, n_shared=6)
    x0, truth = dc.sparse_inputs(circuit, 20, 2, generator=torch.Generator().manual_seed(0), twinned=True)
    assert dc.and_on_errors(truth.float(), truth, circuit)["and_on"].sum() > 10
    fact, _ = dc.run_network(circuit, config, x0, network=network, dtype=torch.float64, wiring="sparse")
    Ws, bs, Rs = dc.explicit_mlp(circuit, config, network=network, wiring="sparse")
    torch.testing.assert_close(fact, dc.explicit_forward(Ws, bs, Rs, x0), rtol=1e-9, atol=1e-9)
    dense, _ = dc.run_network(circuit, config, x0, network=network, dtype=torch.float64)
    assert not torch.allclose(dense, fact)            # a different draw, not the dense wiring reused


def test_pool_operations_agree_between_sparse_and_dense():
    B = dc.bernoulli_rows(50, 70, 0.2, torch.Generator().manual_seed(3))
    sparse, dense = dc.Pool(B), dc.Pool(B.to_dense())
    v, a = torch.randn(4, 70), torch.randn(4, 50)
    idx = torch.tensor([5, 0, 5, 69, 12])              # repeated gates too
    torch.testing.assert_close(sparse.pre(v), dense.pre(v))
    torch.testing.assert_close(sparse.read(a), dense.read(a))
    torch.testing.assert_close(sparse.counts(), dense.counts())
    torch.testing.assert_close(sparse.columns(idx), dense.columns(idx))


def test_bernoulli_rows_has_the_bernoulli_law_and_is_seeded():
    B = dc.bernoulli_rows(400, 3000, 0.05, torch.Generator().manual_seed(0)).to_dense()
    assert set(B.unique().tolist()) == {0.0, 1.0}
    assert abs(B.mean().item() / 0.05 - 1) < 0.02
    per_row = B.sum(1)                                   # Binomial(3000, 0.05): variance 142.5
    assert abs(per_row.var().item() / (3000 * 0.05 * 0.95) - 1) < 0.2
    assert abs(B.sum(0).var().item() / (400 * 0.05 * 0.95) - 1) < 0.1   # columns independent too
    again = dc.bernoulli_rows(400, 3000, 0.05, torch.Generator().manual_seed(0)).to_dense()
    assert torch.equal(B, again)
    assert dc.bernoulli_rows(5, 7, 0.0, torch.Generator()).to_dense().sum() == 0
    assert dc.bernoulli_rows(5, 7, 1.0, torch.Generator()).to_dense().sum() == 35


def test_twin_circuit_keeps_twins_equal_and_twin_ands_follow_their_signal():
    circuit = _twins(depth=6, n_signals=200, twin_and_prob=0.2)
    x0, g = dc.sparse_inputs(circuit, 64, 2, generator=torch.Generator().manual_seed(0), twinned=True)
    assert (x0.sum(1) == 4).all() and (g.sum(2) <= 8).all()
    assert torch.equal(g[..., 0::2], g[..., 1::2])
    twin = (circuit.gate_type == dc.AND) & (circuit.partner // 2 == circuit.perm // 2)
    assert abs(twin.float().mean().item() - 0.2) < 0.03
    random_and = (circuit.gate_type == dc.AND) & ~twin
    assert abs(random_and.float().mean().item() - 0.15) < 0.03
    for l in range(6):
        assert torch.equal(g[l + 1][:, twin[l]], g[l][:, circuit.perm[l][twin[l]]])
    assert (circuit.partner != circuit.perm).all()


def test_and_path_is_read_correctly_where_ands_fire():
    """Spec §9 pitfall 7: with one signal on (s = 2 gates, its twins) many AND gates output 1; with
    pools wide enough that the spurious AND firing rate (about s p) is small, the error-corrected
    network reads every one of them, and every other gate, on the right side of 1/2. (Swapping the
    AND pool's clip for the OR pool's, or reading N_u for N_uv, breaks this.)"""
    config = dc.DeepConfig(d_or=2000, d_and=8000, n_shared=16)
    errors = dc.depth_experiment(60, 8, config, n_active=1, n_inputs=32, gate_prob=0.1, twin_and_prob=0.3,
                                 networks=("ec",), wiring="sparse", generator=torch.Generator().manual_seed(0))
    assert errors["and_on"].sum() >= 30
    assert errors["and_on_max"].max() < 0.5 and errors["max"].max() < 0.5


def test_and_on_errors_counts_only_and_gates_that_are_on():
    circuit = _twins(depth=3)
    x0, truth = dc.sparse_inputs(circuit, 16, 2, generator=torch.Generator().manual_seed(0), twinned=True)
    values = truth.float().clone()
    is_and = circuit.gate_type == dc.AND
    values[1:][truth[1:] & is_and[:, None, :]] = 0.3               # every AND that is on read at 0.3
    table = dc.and_on_errors(values, truth, circuit)
    assert table["and_on"].sum() == int((truth[1:] & is_and[:, None, :]).sum()) > 0
    assert table["and_on_max"].dropna().to_numpy() == pytest.approx(0.7)
    assert table["and_on_ber"].dropna().eq(1.0).all()


def test_superposed_readoffs_are_the_gram_of_the_embedding():
    x0 = uand.sample_exactly_s(6, 50, 3, torch.Generator().manual_seed(0))
    Phi = uand.feature_embedding(50, 20, seed=4)
    torch.testing.assert_close(dc.superposed_readoffs(x0, 20, 4), x0 @ (Phi.T @ Phi).T, rtol=1e-5, atol=1e-5)
    near = dc.superposed_readoffs(x0, 20_000, 4)       # nearly orthogonal: reads close to b
    assert (near - x0).abs().max() < 0.05


def test_run_networks_equals_separate_runs():
    circuit, config = _small()
    x0, _ = dc.sparse_inputs(circuit, 8, 2, generator=torch.Generator().manual_seed(0))
    both = dc.run_networks(circuit, config, x0, networks=("ec", "naive_raw"), wiring="sparse")
    for network in ("ec", "naive_raw"):
        alone, _ = dc.run_network(circuit, config, x0, network=network, wiring="sparse")
        torch.testing.assert_close(both[network][0], alone)
    assert both["naive_raw"][0].dtype == torch.float64


def test_new_bad_parameters_raise():
    g = torch.Generator()
    with pytest.raises(ValueError, match="twin_and_prob"):
        dc.twin_circuit(10, 2, gate_prob=0.3, twin_and_prob=0.5, generator=g)
    with pytest.raises(ValueError, match="wiring"):
        dc.wiring_of("csr", dc.DeepConfig(d_or=10, d_and=10, n_shared=2), 5, 1, 0)
    with pytest.raises(ValueError, match="prob"):
        dc.bernoulli_rows(3, 3, 1.5, g)
    circuit = dc.random_circuit(7, 2, generator=g)
    with pytest.raises(ValueError, match="n_features"):
        dc.sparse_inputs(circuit, 4, 1, generator=g, twinned=True)
    with pytest.raises(ValueError, match="d_input"):
        dc.superposed_readoffs(torch.zeros(2, 5), 0, 0)


def _law_by_seed(scale=0.01, noise=0.0):
    import pandas as pd
    rng = torch.Generator().manual_seed(0)
    rows = [{"m": m, "d": d, "seed": s, "sigma_theory": 1.0,
             "var": scale * m / d ** 1.5 * math.exp(noise * float(torch.randn(1, generator=rng)))}
            for s in (0, 1, 2) for m in (100, 400, 1600) for d in (1000, 4000)]
    return pd.DataFrame(rows)


def test_crossing_width_recovers_the_exact_law():
    """var = 0.01 m / d^1.5 and sigma* = 0.1: m_max = d^1.5, so m_max = 1.5 * 4 d at d = 6^2."""
    interval = dc.crossing_width(_law_by_seed(), 0.1, 1.5, n_boot=50)
    assert interval.estimate == pytest.approx(math.log10(36), abs=1e-9)
    assert interval.low == pytest.approx(interval.estimate, abs=1e-9)
    noisy = dc.crossing_width(_law_by_seed(noise=0.2), 0.1, 1.5, n_boot=200)
    assert noisy.low < noisy.high and noisy.contains(math.log10(36)) is not None
    flat = _law_by_seed().assign(var=lambda t: 0.01 * t["m"] / t["d"] ** 0.5)   # m_max ~ d^0.5: never
    with pytest.raises(ValueError, match="finite"):
        dc.crossing_width(flat, 0.1, 1.5, n_boot=50)


def test_seed_average_averages_variance_over_seeds():
    by_seed = _law_by_seed()
    by_seed.loc[by_seed["seed"] == 0, "var"] *= 4                  # mean over seeds: 2x the law
    avg = dc.seed_average(by_seed)
    assert len(avg) == 6 and list(avg.columns) == ["m", "d", "sigma", "sigma_theory", "x", "var"]
    assert avg["var"].to_numpy() == pytest.approx((2 * 0.01 * avg["m"] / avg["d"] ** 1.5).to_numpy())
    with pytest.raises(ValueError, match="sigma_target"):
        dc.crossing_width(by_seed, 0.0, 1.5)


def test_min_active_keeps_only_inputs_whose_circuit_stays_alive():
    circuit = dc.twin_circuit(100, 12, gate_prob=0.2, twin_and_prob=0.1,
                              generator=torch.Generator().manual_seed(0))
    _, g_all = dc.sparse_inputs(circuit, 64, 1, generator=torch.Generator().manual_seed(1), twinned=True)
    assert (g_all.sum(2) == 0).any()                     # some die out without the filter
    _, g = dc.sparse_inputs(circuit, 64, 1, generator=torch.Generator().manual_seed(1), twinned=True,
                            min_active=1)
    assert (g.sum(2) >= 1).all() and (g.sum(2) <= 4).all()
    with pytest.raises(ValueError, match="min_active"):
        dc.sparse_inputs(circuit, 4, 1, generator=torch.Generator(), twinned=True, min_active=5)
