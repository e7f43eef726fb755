import math

import numpy as np
import pandas as pd
import pytest
import torch

from toysup.cis import uand


def _explicit_readout(act: torch.Tensor, B: torch.Tensor, tuples: torch.Tensor) -> torch.Tensor:
    """<r_T, a> with r_T = prod_i B[:, i] / |N_T| built as a dense vector per tuple."""
    out = torch.zeros(tuples.shape[:2])
    for t in range(tuples.shape[0]):
        for q in range(tuples.shape[1]):
            r = B[:, tuples[t, q]].all(dim=1).double()
            out[t, q] = float(r @ act[t].double() / max(r.sum().item(), 1.0))
    return out


def _dense_inputs(active: torch.Tensor, m: int) -> torch.Tensor:
    x = torch.zeros(active.shape[0], m)
    x.scatter_(1, active, 1.0)
    return x


def test_basis_forward_and_readout_equal_an_explicit_mlp():
    gen = torch.Generator().manual_seed(0)
    m, d, T = 40, 120, 16
    B = uand.connection_matrix(m, d, 0.3, gen)
    active, pairs, _ = uand.draw_inputs(m, 4, T, 3, 3, seed_inputs=1)
    x = _dense_inputs(active, m)
    act_explicit = torch.relu(x @ B.float().T - 1.0)                 # a = ReLU(W x + b), W = B, b = -1
    act = uand.activation(uand.preactivation_basis(B, active), -1.0)
    torch.testing.assert_close(act, act_explicit)
    values, counts = uand.and_readout(act, B, pairs)
    torch.testing.assert_close(values, _explicit_readout(act_explicit, B, pairs), atol=1e-5, rtol=0)
    assert counts.min() >= 0


def test_superposed_forward_equals_an_explicit_mlp_with_w_equal_b_phi_transpose():
    gen = torch.Generator().manual_seed(2)
    m, d, d0, T = 50, 60, 30, 8
    B = uand.connection_matrix(m, d, 0.3, gen)
    Phi = uand.feature_embedding(m, d0, seed=5)
    torch.testing.assert_close(Phi.norm(dim=0), torch.ones(m))
    active, pairs, _ = uand.draw_inputs(m, 3, T, 2, 2, seed_inputs=3)
    x = _dense_inputs(active, m) @ Phi.T                             # x = Phi b, (T, d0)
    W = B.float() @ Phi.T                                            # (d, d0)
    act_explicit = torch.relu(x @ W.T - 1.0)
    x_fact = uand.embed(Phi, active)
    torch.testing.assert_close(x_fact, x, atol=1e-5, rtol=0)
    act = uand.activation(uand.preactivation_superposed(B, Phi, x_fact), -1.0)
    torch.testing.assert_close(act, act_explicit, atol=1e-4, rtol=0)
    values, _ = uand.and_readout(act, B, pairs)
    torch.testing.assert_close(values, _explicit_readout(act_explicit, B, pairs), atol=1e-4, rtol=0)


def test_empty_pairs_are_guarded_and_flagged():
    B = torch.zeros(5, 4, dtype=torch.bool)
    B[:, 0] = True
    act = torch.ones(2, 5)
    values, counts = uand.and_readout(act, B, torch.tensor([[[0, 1]], [[0, 0]]]))
    assert counts.tolist() == [[0], [5]] and values.tolist() == [[0.0], [1.0]]


def test_pairs_cover_the_three_cases():
    active, pairs, case = uand.draw_inputs(100, 3, 20, 5, 5, seed_inputs=0)
    assert pairs.shape == (20, 3 + 5 + 5, 2) and case.tolist() == [0] * 3 + [1] * 5 + [2] * 5
    on = (pairs[..., None] == active[:, None, None, :]).any(-1).sum(-1)    # (T, P) features on
    assert (on == (2 - case)[None, :]).all()
    assert (pairs[..., 0] != pairs[..., 1]).all()


def test_sample_distinct_draws_distinct_uniform_indices():
    idx = uand.sample_distinct(2000, 10, 3, torch.Generator().manual_seed(0))
    assert all(len(set(row)) == 3 for row in idx.tolist())
    freq = torch.bincount(idx.reshape(-1), minlength=10).double() / idx.numel()
    se = math.sqrt(0.1 * 0.9 / idx.numel())
    assert (freq - 0.1).abs().max() < 5 * se


def test_per_case_bias_matches_the_closed_form_within_five_standard_errors():
    m, d, s, K = 400, 600, 3, 30
    p = uand.connect_prob(K, d)
    theory = uand.readoff_bias_theory(s, p)
    means = {c: [] for c in uand.CASES}
    for seed in range(6):                                           # network-to-network spread
        table = uand.evaluate_basis(m, d, n_active=s, n_shared=K, n_inputs=150,
                                    seed_network=seed, seed_inputs=100 + seed)
        for c in uand.CASES:
            means[c].append(table.loc[table["case"] == c, "error"].mean())
    for c in uand.CASES:
        v = np.array(means[c])
        se = v.std(ddof=1) / math.sqrt(len(v))
        assert abs(v.mean() - theory[c]) < 5 * se + 1e-3, (c, v.mean(), theory[c], se)


def test_closed_forms():
    th = uand.readoff_bias_theory(3, 0.2)
    assert th["both on"] == pytest.approx(0.2) and th["one on"] == pytest.approx(0.4)
    assert th["none on"] == pytest.approx(3 * 0.2 ** 2 - 0.2 ** 3)             # C(3,2)p^2 - p^3
    assert uand.connect_prob(25, 400) == pytest.approx(0.25)
    assert uand.connect_prob(20, 2000, k=3) == pytest.approx(0.01 ** (1 / 3))


def test_interference_std_matches_sqrt_pms_over_d0():
    table, sigma = uand.evaluate_superposed(2000, 400, n_active=2, n_shared=25, n_inputs=40)
    theory = uand.interference_std_theory(2000, 400, 2, uand.connect_prob(25, 400))
    assert abs(sigma / theory - 1) < 0.1, (sigma, theory)
    # basis and superposed read-offs are evaluated on the same pairs
    assert np.allclose(table["excess"], table["readout_sup"] - table["readout_basis"])


def test_neurons_needed_inverts_a_power_law():
    d = np.array([100, 200, 400, 800, 1600])
    err = 3.0 * d ** -0.5
    assert uand.neurons_needed(d, err, 3.0 / math.sqrt(500)) == pytest.approx(500, rel=1e-9)
    assert uand.neurons_needed(d[::-1], err[::-1], 3.0 / math.sqrt(500)) == pytest.approx(500, rel=1e-9)
    assert uand.neurons_needed(d, err, err[2]) == pytest.approx(400, rel=1e-12)   # on a grid point
    assert uand.neurons_needed(d, err, 10.0) == 100                               # starts below it
    assert uand.neurons_needed_theory(1000, 2, 25, 0.5) == pytest.approx((2 * 5 * 1000 / 0.25) ** (2 / 3))


def test_neurons_needed_is_inf_when_no_width_reaches_the_target():
    """The one convention: a curve that never reaches the target needs more neurons than any width
    on the grid, so it compares as larger than every width (and np.isfinite flags it)."""
    needed = uand.neurons_needed([100, 400], [0.4, 0.2], 0.1)
    assert needed == math.inf and needed > 400


def test_neurons_needed_by_m_keeps_only_the_m_that_reach_the_target():
    summary = pd.DataFrame({"m": [10] * 3 + [20] * 3, "d": [100, 200, 400] * 2,
                            "err": [0.4, 0.2, 0.1, 0.8, 0.4, 0.2]})
    needed = uand.neurons_needed_by_m(summary, "err", 0.1)
    assert needed.index.tolist() == [10] and needed.loc[10] == pytest.approx(400)
    assert uand.neurons_needed_by_m(summary, "err", 0.4).tolist() == pytest.approx([100, 200])


def test_sample_exactly_s_is_the_one_hot_of_the_smallest_keys():
    x = uand.sample_exactly_s(500, 12, 3, torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and ((x == 0) | (x == 1)).all() and (x.sum(1) == 3).all()
    idx = uand.sample_distinct(500, 12, 3, torch.Generator().manual_seed(0), largest=False)
    assert torch.equal(x.nonzero()[:, 1].reshape(500, 3), idx.sort(1).values)
    freq = x.mean(0).double()                                       # each feature on w.p. s/m
    se = math.sqrt(0.25 * 0.75 / 500)
    assert (freq - 0.25).abs().max() < 5 * se


@pytest.mark.parametrize(("call", "name"), [
    (lambda: uand.connect_prob(30, 20), "n_shared"),
    (lambda: uand.connect_prob(0, 20), "n_shared"),
    (lambda: uand.connect_prob(5, 20, k=0), "k"),
    (lambda: uand.connection_matrix(10, 5, 1.5, torch.Generator()), "connect_prob"),
    (lambda: uand.connection_matrix(10, 5, 0.0, torch.Generator()), "connect_prob"),
    (lambda: uand.evaluate_basis(10, 100, n_active=11), "n_active"),
    (lambda: uand.evaluate_basis(10, 100, n_active=1), "n_active"),
    (lambda: uand.evaluate_basis(10, 20, n_shared=30), "n_shared"),
    (lambda: uand.evaluate_basis(0, 100), "n_features"),
    (lambda: uand.evaluate_superposed(100, 100, d_input=0), "d_input"),
    (lambda: uand.evaluate_basis(12, 100, n_active=3), "n_features"),
    (lambda: uand.sample_distinct(5, 10, 11, torch.Generator()), "n_draw"),
    (lambda: uand.neurons_needed([1, 2], [1, 0.5], 0.0), "target"),
    (lambda: uand.sample_exactly_s(5, 10, 11, torch.Generator()), "n_active"),
    (lambda: uand.readoff_bias_theory(3, 1.2), "connect_prob"),
])
def test_bad_parameters_raise_value_error_naming_them(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_and_readout_with_a_transposed_copy_at_hand_gives_the_same_values():
    B = uand.connection_matrix(30, 80, 0.3, torch.Generator().manual_seed(3))
    active, pairs, _ = uand.draw_inputs(30, 3, 12, 2, 2, 5)
    act = uand.activation(uand.preactivation_basis(B, active), -1.0)
    values, counts = uand.and_readout(act, B, pairs)
    values_t, counts_t = uand.and_readout(act, B, pairs, Bt=B.T.contiguous())
    assert torch.equal(counts, counts_t) and torch.equal(values, values_t)
    # the count is |N_ij| itself, read from B directly
    i, j = pairs[0, 0].tolist()
    assert counts[0, 0] == (B[:, i] & B[:, j]).sum()
