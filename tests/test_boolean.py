import math

import numpy as np
import pandas as pd
import pytest
import torch

from toysup.cis import boolean, epsilon, uand


def test_mobius_coefficients_of_known_functions():
    assert boolean.mobius_coefficients(boolean.FUNCTIONS["OR"][1], 2) == {(0,): 1, (1,): 1, (0, 1): -1}
    assert boolean.mobius_coefficients(boolean.FUNCTIONS["XOR"][1], 2) == {(0,): 1, (1,): 1, (0, 1): -2}
    par = boolean.mobius_coefficients(boolean.FUNCTIONS["PARITY3"][1], 3)
    assert par == {(0,): 1, (1,): 1, (2,): 1, (0, 1): -2, (0, 2): -2, (1, 2): -2, (0, 1, 2): 4}
    maj = boolean.mobius_coefficients(boolean.FUNCTIONS["MAJ3"][1], 3)
    assert maj == {(0, 1): 1, (0, 2): 1, (1, 2): 1, (0, 1, 2): -2}


@pytest.mark.parametrize("name", sorted(boolean.FUNCTIONS))
def test_multilinear_expansion_reproduces_the_truth_table(name):
    k, g = boolean.FUNCTIONS[name]
    coeffs = boolean.mobius_coefficients(g, k)
    for bits in np.ndindex(*(2,) * k):
        value = sum(c * math.prod(bits[i] for i in T) for T, c in coeffs.items())
        assert value == g(*bits)


def test_k_and_theory_gives_the_closed_form_biases():
    p = 0.1
    th = boolean.k_and_theory(4, 3, p)
    assert th[3] == pytest.approx((4 - 3) * p) and th[2] == pytest.approx((4 - 2) * p)
    th2 = boolean.k_and_theory(3, 2, p)
    pair = uand.readoff_bias_theory(3, p)
    assert th2 == pytest.approx({2: pair["both on"], 1: pair["one on"], 0: pair["none on"]})
    # clipped copy unit: exact when on, spurious-firing rate 1 - (1-p)^s when off
    assert boolean.and_error_theory(4, 1, 1, p, clip=True) == pytest.approx(0.0, abs=1e-12)
    assert boolean.and_error_theory(4, 1, 0, p, clip=True) == pytest.approx(1 - (1 - p) ** 4)


def test_tuples_have_the_stated_number_of_features_on():
    gen = torch.Generator().manual_seed(0)
    drawn = uand.sample_distinct(30, 200, 4 + 6, gen)
    active, inactive = drawn[:, :4], drawn[:, 4:]
    tuples, n_on = boolean.sample_tuples(active, inactive, 3, 4, gen)
    on = boolean._membership(tuples, active).sum(-1)
    assert (on == n_on[None, :]).all()
    assert all(len(set(t)) == 3 for t in tuples.reshape(-1, 3).tolist())


def test_explicit_layer_equals_the_pooled_forward_pass():
    gen = torch.Generator().manual_seed(1)
    m, d, T = 30, 40, 10
    pools = {j: uand.connection_matrix(m, d, 0.3, gen) for j in (1, 2, 3)}
    active = uand.sample_distinct(T, m, 4, gen)
    x = torch.zeros(T, m).scatter_(1, active, 1.0)
    W, bias = boolean.explicit_layer(pools)
    assert W.shape == (4 * d, m)                                   # copy units are two ReLUs each
    h = torch.relu(x @ W.T + bias)
    torch.testing.assert_close(boolean.pool_forward(pools[1], active, 1), h[:, :d] - h[:, d:2 * d])
    torch.testing.assert_close(boolean.pool_forward(pools[2], active, 2), h[:, 2 * d:3 * d])
    torch.testing.assert_close(boolean.pool_forward(pools[3], active, 3), h[:, 3 * d:])


def test_k_and_all_on_bias_matches_closed_form_within_five_standard_errors():
    means = []
    for seed in range(5):
        table = boolean.evaluate_k_and(300, 1000, 3, n_active=4, n_shared=20, n_inputs=100,
                                       seed_network=seed, seed_inputs=50 + seed)
        means.append(table.loc[table["n_on"] == 3, "error"].mean())
    v = np.array(means)
    theory = (4 - 3) * uand.connect_prob(20, 1000, 3)
    assert abs(v.mean() - theory) < 5 * v.std(ddof=1) / math.sqrt(len(v)) + 1e-3


def test_function_readout_is_linear_in_the_and_readouts():
    table = boolean.evaluate_functions(300, 800, ["AND", "OR", "XOR"], n_inputs=50)
    assert (table["error"].abs() <= table["bound"] + 1e-5).all()
    assert set(table["pattern"]) == {"00", "01", "10", "11"}
    xor = table[table["function"] == "XOR"].reset_index(drop=True)
    orr = table[table["function"] == "OR"].reset_index(drop=True)
    conj = table[table["function"] == "AND"].reset_index(drop=True)
    # OR - XOR = AND: all three read the same pair through the same pools
    assert np.allclose(orr["readout"] - xor["readout"], conj["readout"], atol=1e-5)
    assert ((xor["target"] == 1) == xor["pattern"].isin(["01", "10"])).all()


@pytest.mark.parametrize(("call", "name"), [
    (lambda: boolean.k_and_theory(4, 1, 0.1), "k"),
    (lambda: boolean.k_and_theory(2, 3, 0.1), "n_active"),
    (lambda: boolean.evaluate_k_and(100, 500, 1), "k"),
    (lambda: boolean.evaluate_k_and(100, 10, 3, n_shared=20), "n_shared"),
    (lambda: boolean.evaluate_k_and(100, 500, 3, n_active=2), "n_active"),
    (lambda: boolean.mobius_coefficients(lambda a, b: 1 - (a & b), 2), "g"),
    (lambda: boolean.evaluate_functions(100, 500, ["NAND"]), "functions"),
    (lambda: boolean.evaluate_functions(100, 500, ["XOR", "MAJ3"]), "functions"),
    (lambda: boolean.and_error_theory(3, 2, 3, 0.1), "n_on"),
    (lambda: boolean.and_error_theory(3, 2, 1, 0.0), "connect_prob"),
])
def test_bad_parameters_raise_value_error_naming_them(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_multilinear_form_and_function_table():
    assert boolean.multilinear_form("XOR") == "XOR = +1·x1 +1·x2 -2·x1x2"
    with pytest.raises(ValueError, match="name"):
        boolean.multilinear_form("NAND")
    funcs = boolean.evaluate_functions(200, 400, ["OR"], n_active=3, n_shared=10, n_inputs=20)
    table = boolean.function_table(funcs).loc["OR"]
    assert table.index.tolist() == ["00", "01", "10", "11"]
    assert table["target"].tolist() == [0, 1, 1, 1] and (table["n"] > 0).all()


# ---------------------------------------------------------------------------------------- noise, superposed
def test_relu_gaussian_mean_limits_and_monte_carlo():
    assert boolean.relu_gaussian_mean(0.0, 1.0) == pytest.approx(1 / math.sqrt(2 * math.pi))
    np.testing.assert_allclose(boolean.relu_gaussian_mean([-1.0, 0.5], 0.0), [0.0, 0.5])
    z = np.random.default_rng(0).standard_normal(400_000)
    for mean, std in [(-0.7, 0.4), (0.3, 0.8)]:
        mc = np.maximum(mean + std * z, 0)
        se = mc.std() / math.sqrt(z.size)
        assert abs(boolean.relu_gaussian_mean(mean, std) - mc.mean()) < 5 * se
    with pytest.raises(ValueError, match="noise_std"):
        boolean.relu_gaussian_mean(0.0, -1.0)


def test_noisy_and_theory_reduces_to_the_exact_form_and_adds_the_rectified_bias():
    p = 0.1
    assert boolean.and_error_theory(4, 3, 2, p, noise_std=1e-9) == pytest.approx(
        boolean.and_error_theory(4, 3, 2, p), abs=1e-9)
    # k-1 on with no other feature read: rectified noise adds sigma / sqrt(2 pi) (spec §3.1)
    assert boolean.and_error_theory(1, 2, 1, 0.1, noise_std=0.3) == pytest.approx(0.3 / math.sqrt(2 * math.pi))
    # all on: zero-mean noise on a unit that is well above threshold leaves the mean unchanged
    assert boolean.and_error_theory(2, 2, 2, 0.1, noise_std=0.1) == pytest.approx(0.0, abs=1e-6)
    arr = boolean.and_error_theory(4, 2, 1, p, noise_mean=np.array([0.0, 0.2]), noise_std=0.1)
    assert arr.shape == (2,) and arr[1] > arr[0]
    with pytest.raises(ValueError, match="clip"):
        boolean.and_error_theory(4, 1, 0, p, clip=True, noise_std=0.1)


def test_superposed_k_and_is_the_explicit_network_and_shares_its_basis_twin():
    m, d, d0, k = 300, 400, 150, 3
    table, sigma = boolean.evaluate_k_and_superposed(m, d, k, d0, n_inputs=20, seed_network=3,
                                                     seed_inputs=4)
    basis = boolean.evaluate_k_and(m, d, k, n_inputs=20, seed_network=3, seed_inputs=4)
    np.testing.assert_allclose(table["readout_basis"], basis["readout"], atol=1e-6)
    p, B, active, tuples, _ = boolean._k_and_network(m, d, k, 4, 20, 20, 5, 3, 4)
    Phi = uand.feature_embedding(m, d0, 3)
    x = torch.zeros(20, m).scatter_(1, active, 1.0) @ Phi.T            # (T, d0): x = Phi b
    act = torch.relu(x @ (B.float() @ Phi.T).T - (k - 1))              # W = B Phi^T, explicit
    values, _ = uand.and_readout(act, B, tuples)
    np.testing.assert_allclose(table["readout_sup"], values.reshape(-1).numpy(), atol=1e-4)
    theory = uand.interference_std_theory(m, d0, 4, p)
    assert abs(sigma / theory - 1) < 0.1, (sigma, theory)
    assert table["excess"].abs().max() > 0
    with pytest.raises(ValueError, match="d_input"):
        boolean.evaluate_k_and_superposed(m, d, k, 0)


def test_superposed_sweep_matches_the_gaussian_noise_closed_form_in_standard_errors():
    rows = boolean.sweep_k_and_superposed(1000, 2000, [2], [400], n_inputs=300, network_seeds=[0])
    near = rows[(rows["inputs"] == "superposed") & (rows["n_on"] == "1")].iloc[0]
    base = rows[(rows["inputs"] == "basis") & (rows["n_on"] == "1")].iloc[0]
    assert near["bias"] > base["bias"] + 5 * near["se"]                # superposition adds error
    assert abs(near["bias"] - near["theory"]) < 5 * near["se"] + 0.01, near
    assert {"max", "q99", "q999", "ber"} <= set(rows.columns)


def test_error_summary_counts_bits_wrong_after_rounding():
    out = boolean.error_summary([0.1, -0.6, 0.5, 0.2])
    assert out["max"] == pytest.approx(0.6) and out["ber"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="errors"):
        boolean.error_summary([])


# ---------------------------------------------------------------------------------------- stacking
def test_readout_rows_equal_and_readout():
    gen = torch.Generator().manual_seed(0)
    B = uand.connection_matrix(50, 300, 0.2, gen)
    tuples = torch.tensor([[0, 1], [2, 3], [4, 49]])
    act = torch.rand(6, 300, generator=gen)
    values, _ = uand.and_readout(act, B, tuples[None].expand(6, -1, -1))
    torch.testing.assert_close(act @ boolean.readout_rows(B, tuples).T, values)


def test_stacked_inputs_switch_on_their_gate():
    gates = torch.tensor([[0, 1], [2, 3], [4, 5]])
    active, gate, off = boolean.stacked_inputs(gates, 40, 4, 200, 3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(active[:, :2], gates[gate])
    for row, o in zip(active.tolist(), off.tolist()):
        assert len(set(row)) == 4 and not set(row) & set(o) and len(set(o)) == 3
    with pytest.raises(ValueError, match="n_active"):
        boolean.stacked_inputs(gates, 40, 2, 5, 3, torch.Generator())


@pytest.mark.parametrize("centre", [True, False])
def test_stacked_and_is_an_explicit_two_layer_relu_network(centre):
    m, d, G, T = 60, 200, 30, 8
    layer1, layer2 = boolean.stacked_and(m, d, n_gates=G, n_inputs=T, centre=centre,
                                         seed_network=5, seed_inputs=6)
    gen_net = torch.Generator().manual_seed(5)
    B_copy = uand.connection_matrix(m, d, 20 / d, gen_net)
    B_and = uand.connection_matrix(m, d, math.sqrt(20 / d), gen_net)
    B2 = uand.connection_matrix(m + G, d, math.sqrt(20 / d), gen_net)
    gates = boolean.epsilon.candidate_pairs(m, G, 5)
    W1, b1 = boolean.explicit_layer({1: B_copy, 2: B_and})             # (3d, m)
    Rc, Ra = boolean.readout_rows(B_copy, torch.arange(m)[:, None]), boolean.readout_rows(B_and, gates)
    R1 = torch.block_diag(torch.cat([Rc, -Rc], 1), Ra)                 # (m + G, 3d)
    C = torch.block_diag(*(torch.eye(n) - (1.0 / n if centre else 0.0) for n in (m, G)))
    W2 = B2.float() @ C @ R1                                           # W^2 = B^2 C R^1
    x = layer1["truth"][:, :m]
    h2 = torch.relu(torch.relu(x @ W1.T + b1) @ W2.T - 1.0)
    v = torch.relu(x @ W1.T + b1) @ (C @ R1).T
    torch.testing.assert_close(v, layer1["value"], atol=1e-5, rtol=1e-5)
    assert torch.allclose(h2, torch.relu(v @ B2.float().T - 1.0), atol=1e-4)
    assert set(layer2["case"]) == {"both on", "gate on, c off", "gate off, c on", "none on"}
    assert (layer2.loc[layer2["case"] == "both on", "target"] == 1).all()


def test_stacking_without_centring_accumulates_the_predicted_positive_bias():
    _, raw = boolean.stacked_and(1000, 2000, n_gates=1000, n_inputs=100, centre=False)
    _, cen = boolean.stacked_and(1000, 2000, n_gates=1000, n_inputs=100, centre=True)
    for table in (raw, cen):
        for case, rows in table.groupby("case"):
            se = rows["error"].std() / math.sqrt(len(rows))
            assert abs(rows["error"].mean() - rows["theory"].mean()) < 5 * se + 0.05, case
    off = raw["case"] == "none on"
    assert raw.loc[off, "error"].mean() > 0.5 > cen.loc[cen["case"] == "none on", "error"].mean()


def test_search_probs_give_k_shared_neurons_and_stay_probabilities():
    probs = boolean.search_probs([10, 40, 5000], 1000, 3)
    assert probs[0] ** 3 * 1000 == pytest.approx(10) and probs[1] ** 3 * 1000 == pytest.approx(40)
    assert probs[2] == 1.0                                   # K > d capped: p = 1
    with pytest.raises(ValueError, match="n_shared"):
        boolean.search_probs([], 1000, 3)


def test_k_and_epsilon_scores_the_same_network_and_sample_as_evaluate_k_and():
    """At K = n_shared the search's random sample is evaluate_k_and's (same B, inputs, tuples), and ε is
    the maximum over it and the hard cases; the hard tuples are worse than the control tuples."""
    m, d, k, s = 300, 900, 3, 4
    sample = epsilon.Sample(n_inputs=40, n_candidates=300, n_hard=16, seed_inputs=5)
    table = boolean.k_and_epsilon(m, d, k, [10, 20], n_active=s, n_per_class=3, sample=sample,
                                  seed_network=7)
    ref = boolean.evaluate_k_and(m, d, k, n_active=s, n_shared=20, n_inputs=40, n_per_class=3,
                                 seed_network=7, seed_inputs=5)
    row = table.set_index("K").loc[20.0]
    assert row["max_random"] == pytest.approx(ref["error"].abs().max(), abs=1e-6)
    assert row["mean"] == pytest.approx(ref["error"].abs().mean(), abs=1e-6)
    assert (table["epsilon"] >= table[["max_random", "max_worst_random", "max_worst_hard"]].max(axis=1) - 1e-12).all()
    assert (table["max_worst_hard"] >= table["max_worst_random"]).all()
    assert table["p"].tolist() == pytest.approx([(10 / d) ** (1 / 3), (20 / d) ** (1 / 3)])


def test_best_density_keeps_the_smallest_epsilon_and_flags_grid_ends():
    table = pd.DataFrame({"k": 2, "d": [100, 100, 100, 200, 200, 200], "seed_network": 0,
                          "K": [10.0, 20.0, 40.0] * 2, "p": [0.3, 0.4, 0.6, 0.2, 0.3, 0.45],
                          "epsilon": [0.9, 0.5, 0.7, 0.9, 0.8, 0.6]})
    best = boolean.best_density(table).set_index("d")
    assert best.loc[100, "K"] == 20.0 and not best.loc[100, "at_edge"]
    assert best.loc[200, "K"] == 40.0 and best.loc[200, "at_edge"]


def test_stacked_hard_cases_are_harder_than_the_random_sample_of_the_same_network():
    """The hard inputs (partners overlapping N_(g,c) the most, tuples with the fewest neurons) go
    through the same two-layer network as stacked_and's random sample and read far worse."""
    kwargs = dict(n_gates=200, n_active=4, seed_network=0, seed_inputs=1)
    hard = boolean.stacked_hard_errors(300, 600, n_candidates=300, n_hard=16, **kwargs)
    _, layer2 = boolean.stacked_and(300, 600, n_inputs=200, **kwargs)
    assert set(hard) == set(epsilon.SOURCES[1:]) and all(v.shape == (64,) for v in hard.values())
    random_mean = layer2["error"].abs().mean()
    for errors in hard.values():
        assert (errors >= 0).all() and errors.mean() > 1.5 * random_mean
    assert max(float(v.max()) for v in hard.values()) > layer2["error"].abs().max()
    with pytest.raises(ValueError, match="n_active"):
        boolean.stacked_hard_errors(300, 600, n_gates=200, n_active=2)
