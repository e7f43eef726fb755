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
