import math

import numpy as np
import pytest
import torch

from toysup.cis import boolean, uand


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
