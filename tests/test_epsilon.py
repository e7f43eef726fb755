"""toysup.cis.epsilon: the worst case of U1 is exact (against brute force over every s-sparse input),
the hard cases are what their docstrings say, the superposed network is a real MLP W = B Phi^T,
the width search finds the first width that reaches a target, and the dense read-off equals the
explicit network of ``and_mlp``."""
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from toysup.cis import and_mlp, epsilon, uand


def _brute_force_worst(B: torch.Tensor, pair: tuple[int, int], s: int) -> float:
    m = B.shape[1]
    inputs = torch.tensor(list(itertools.combinations(range(m), s)))
    act = uand.activation(uand.preactivation_basis(B, inputs), -1.0)
    values, _ = uand.and_readout(act, B, torch.tensor(pair).expand(len(inputs), 1, 2))
    target = torch.tensor([[pair[0] in row and pair[1] in row] for row in inputs.tolist()])
    return float((values - target.float()).abs().max())


@pytest.mark.parametrize("s", [2, 3, 4])
def test_u1_worst_case_equals_brute_force_over_every_sparse_input(s):
    m, d = 12, 50
    B = uand.connection_matrix(m, d, 0.4, torch.Generator().manual_seed(s))
    pairs = torch.tensor([[0, 1], [2, 7], [3, 11], [5, 6]])
    _, overlaps, counts = epsilon.top_partners(B, pairs, s - 1)
    worst = epsilon.worst_case_basis(overlaps, counts, s)
    for q, pair in enumerate(pairs.tolist()):
        assert worst[q].item() == pytest.approx(_brute_force_worst(B, tuple(pair), s), abs=1e-6)


def test_a_pair_without_shared_neurons_has_worst_case_one():
    B = torch.zeros(4, 5, dtype=torch.bool)
    B[:, 0] = True
    _, overlaps, counts = epsilon.top_partners(B, torch.tensor([[0, 1]]), 2)
    assert counts.item() == 0 and epsilon.worst_case_basis(overlaps, counts, 3).item() == 1.0


def test_hard_pairs_have_the_fewest_shared_neurons_and_partners_the_largest_overlap():
    B = uand.connection_matrix(40, 300, 0.3, torch.Generator().manual_seed(0))
    candidates = epsilon.candidate_pairs(40, 200, seed=1)
    assert (candidates[:, 0] < candidates[:, 1]).all()
    hard = epsilon.hard_pairs(B, candidates, 10)
    counts = epsilon.shared_counts(B, candidates)
    assert epsilon.shared_counts(B, hard).max() <= counts.sort().values[9]
    partners, overlaps, _ = epsilon.top_partners(B, hard, 3)
    for (i, j), row, ov in zip(hard.tolist(), partners.tolist(), overlaps.tolist()):
        shared = B[:, i] & B[:, j]
        every = (B & shared[:, None]).sum(0)
        every[[i, j]] = -1
        assert ov == every[row].tolist() and ov[0] == every.max()
        assert i not in row and j not in row and ov == sorted(ov, reverse=True)


def test_hard_inputs_switch_the_partners_on_beside_one_and_both():
    pairs, partners = torch.tensor([[3, 8]]), torch.tensor([[1, 5, 9]])
    active, tuples, case = epsilon.hard_inputs(pairs, partners, 3)
    assert active.tolist() == [[3, 1, 5], [8, 1, 5], [3, 8, 1]]
    assert tuples.tolist() == [[[3, 8]]] * 3 and case.tolist() == [1, 1, 0]


def test_embedding_is_drawn_per_feature_and_the_gram_matches_phi_transpose_phi():
    Phi = uand.feature_embedding(30, 16, seed=4)
    torch.testing.assert_close(Phi.norm(dim=0), torch.ones(30))
    sub = torch.tensor([29, 3, 3, 11])
    torch.testing.assert_close(uand.embedding_columns(sub, 16, seed=4), Phi[:, sub])
    torch.testing.assert_close(uand.embedding_gram(sub, 30, 16, seed=4), Phi.T @ Phi[:, sub])
    assert not torch.equal(uand.feature_embedding(30, 16, seed=5), Phi)


def test_superposed_epsilon_scores_the_explicit_mlp():
    """Every error of superposed_epsilon is a read-off of ReLU(W x - 1) with W = B Phi^T, x = Phi b;
    rebuilt here for the random sample with the explicit matrices."""
    m, d, s, p = 60, 80, 2, 0.3
    sample = epsilon.Sample(n_inputs=12, n_one=2, n_none=2, n_candidates=50, n_hard=5)
    table = epsilon.superposed_epsilon(m, d, [p], n_active=s, sample=sample, seed_network=3)
    B = uand.connection_keys(m, d, torch.Generator().manual_seed(3)) < p
    Phi = uand.feature_embedding(m, d, seed=3)
    active, pairs, _ = uand.draw_inputs(m, s, 12, 2, 2, sample.seed_inputs)
    x = torch.zeros(12, m).scatter_(1, active, 1.0) @ Phi.T
    act = torch.relu(x @ (B.float() @ Phi.T).T - 1.0)
    values, _ = uand.and_readout(act, B, pairs)
    on = torch.zeros(12, m, dtype=torch.bool).scatter_(1, active, True)
    target = on.gather(1, pairs[..., 0]) & on.gather(1, pairs[..., 1])
    err = (values - target.float()).abs()
    assert table["max_random"].item() == pytest.approx(err.max().item(), abs=1e-5)
    assert table["mean"].item() == pytest.approx(err.mean().item(), abs=1e-5)
    assert table["epsilon"].item() == max(table[c].item() for c in
                                          ("max_random", "max_worst_random", "max_worst_hard"))


def test_basis_epsilon_is_at_least_every_random_error_of_the_same_network():
    sample = epsilon.Sample(n_inputs=50, n_candidates=300, n_hard=20)
    table = epsilon.basis_epsilon(200, 400, [0.1, 0.3], n_active=3, sample=sample)
    assert (table["epsilon"] >= table["max_random"]).all()
    assert (table["q99"] <= table["max_random"]).all() and (table["mean"] <= table["q99"]).all()
    assert table["K"].tolist() == pytest.approx([0.1 ** 2 * 400, 0.3 ** 2 * 400])


def test_best_keeps_the_smallest_epsilon_and_flags_the_grid_edges():
    table = epsilon.basis_epsilon(100, 200, [0.05, 0.2, 0.8], n_active=3,
                                  sample=epsilon.Sample(n_inputs=20, n_candidates=100, n_hard=10))
    row = epsilon.best(table)
    assert len(row) == 1 and row["epsilon"].item() == table["epsilon"].min()
    assert row["at_edge"].item() == (row["p"].item() in (0.05, 0.8))


def test_fewest_neurons_finds_the_first_width_reaching_the_target_by_bisection():
    widths = [round(100 * 2 ** (k / 4)) for k in range(30)]
    calls = []

    def eps(d):
        calls.append(d)
        return 5.0 / math.sqrt(d)

    d_star, seen = epsilon.fewest_neurons(eps, widths, 5.0 / math.sqrt(1000), start=3)
    assert d_star == pytest.approx(1000, rel=1e-9)
    assert len(calls) == len(set(calls)) <= 2 * math.ceil(math.log2(len(widths))) + 2
    first = min(w for w in widths if eps(w) <= 5.0 / math.sqrt(1000))
    assert first in seen and max(w for w in widths if w < first) in seen
    assert epsilon.fewest_neurons(eps, widths, 10.0, start=20)[0] == widths[0]
    assert epsilon.fewest_neurons(eps, widths, 1e-3)[0] == math.inf


def test_dense_errors_equal_the_explicit_dense_network():
    d, s, T = 36, 3, 8
    table = epsilon.dense_errors([d], n_active=s, n_inputs=T, network_seeds=[2], seed_inputs=5)
    W = and_mlp.dense_weights(d, d, torch.Generator().manual_seed(2))
    pairs = and_mlp.all_pairs(d)
    net = and_mlp.MLP(W, torch.zeros(d), and_mlp.readoff_matrix("dense", W, pairs, n_active=s),
                      torch.zeros(len(pairs)))
    active = uand.sample_distinct(T, d, s, torch.Generator().manual_seed(5))
    x = torch.zeros(T, d).scatter_(1, active, 1.0)
    err = (net(x) - and_mlp.and_targets(x, pairs)).abs()
    touched = (x[:, pairs[:, 0]] + x[:, pairs[:, 1]]) > 0
    row = table.iloc[0]
    assert row["n_scored"] == touched.sum().item()
    assert row["mean_abs"] == pytest.approx(err[touched].mean().item(), abs=1e-5)
    assert row["max_abs"] == pytest.approx(err[touched].max().item(), abs=1e-5)


@pytest.mark.parametrize(("call", "name"), [
    (lambda: epsilon.Sample(n_hard=0), "n_hard"),
    (lambda: epsilon.Sample(n_candidates=10, n_hard=20), "n_hard"),
    (lambda: epsilon.Sample(n_one=-1), "n_one"),
    (lambda: epsilon.basis_epsilon(50, 60, [1.5]), "probs"),
    (lambda: epsilon.candidate_pairs(1, 5, 0), "n_features"),
    (lambda: epsilon.worst_case_basis(torch.zeros(1, 1), torch.ones(1), 1), "n_active"),
    (lambda: epsilon.fewest_neurons(lambda d: 0.0, [4, 2], 0.1), "widths"),
    (lambda: epsilon.fewest_neurons(lambda d: 0.0, [2, 4], 0.1, start=2), "start"),
    (lambda: epsilon.neurons_needed_search("dense", [10], [5], [10.0], 0.5, network_seeds=[0],
                                           n_active=2), "kind"),
    (lambda: epsilon.probs_for([], 100), "n_shared"),
    (lambda: epsilon.dense_errors([8], features_per_neuron=0), "features_per_neuron"),
])
def test_bad_parameters_raise_value_error_naming_them(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_connection_keys_reproduce_connection_matrix_for_every_p():
    keys = uand.connection_keys(70, 90, torch.Generator().manual_seed(7))
    for p in (0.1, 0.5):
        assert torch.equal(keys < p, uand.connection_matrix(70, 90, p, torch.Generator().manual_seed(7)))
    assert ((keys >= 0) & (keys < 1)).all() and abs(float(keys.mean()) - 0.5) < 5 * (1 / 12 / keys.numel()) ** 0.5
    assert np.isclose(float((keys < 0.3).double().mean()), 0.3, atol=5 * (0.21 / keys.numel()) ** 0.5)


def test_probs_for_is_a_grid_in_k_capped_at_one():
    assert epsilon.probs_for([25, 100, 400], 100) == pytest.approx([0.5, 1.0, 1.0])


def test_neurons_needed_search_reaches_the_target_on_a_small_basis_problem():
    sample = epsilon.Sample(n_inputs=20, n_candidates=100, n_hard=10)
    widths = [100, 200, 400, 800, 1600]
    evaluations, needed = epsilon.neurons_needed_search(
        "basis", [60, 120], widths, [20, 40, 80], 1.2, network_seeds=[0], n_active=3, sample=sample)
    assert needed["m"].tolist() == [60, 120] and (needed["evaluated"] >= 1).all()
    for _, row in needed.iterrows():
        best = epsilon.best(evaluations[evaluations["m"] == row["m"]]).set_index("d")["epsilon"]
        passing = best[best <= 1.2]
        if np.isfinite(row["d_star"]):     # d* lies between the last failing and first passing width
            assert row["d_star"] <= passing.index.min()
            failing = best[(best > 1.2) & (best.index < passing.index.min())]
            assert failing.empty or row["d_star"] >= failing.index.max()


def test_gaussian_max_theory_matches_the_maximum_of_gaussian_samples():
    rng = np.random.default_rng(0)
    e = np.abs(rng.standard_normal((200, 20000)))
    predicted = epsilon.gaussian_max_theory(e.mean(), 20000)
    assert e.max(1).mean() == pytest.approx(float(predicted), rel=0.08)


def test_local_readout_equals_the_full_forward_pass():
    """Pre-activations only at the neurons a tuple reads give the same read-offs as all of them."""
    m, d, d0 = 80, 120, 40
    B = uand.connection_matrix(m, d, 0.25, torch.Generator().manual_seed(4))
    Phi = uand.feature_embedding(m, d0, seed=6)
    active = uand.sample_distinct(10, m, 3, torch.Generator().manual_seed(7))
    tuples = epsilon.candidate_pairs(m, 10 * 4, seed=8).reshape(10, 4, 2)
    x = uand.embed(Phi, active)
    local, counts = epsilon.local_readout(B, B.T.contiguous(), x @ Phi, tuples)
    full, full_counts = uand.and_readout(uand.activation(uand.preactivation_superposed(B, Phi, x), -1.0),
                                         B, tuples)
    torch.testing.assert_close(local, full, atol=1e-5, rtol=0)
    assert torch.equal(counts, full_counts)


def test_bracketing_keeps_the_first_passing_width_and_the_widest_failing_one_below_it():
    rows = pd.DataFrame({"s": [2] * 5 + [3] * 2 + [4],
                         "d": [32, 64, 128, 256, 512, 64, 128, 64],
                         "epsilon": [1.0, 0.95, 0.8, 0.6, 0.97, 0.7, 0.5, 1.0]})
    kept = epsilon.bracketing(rows, 0.9, by=["s"])
    # s = 2: 128 passes first, 64 is the widest failing below it (512 failing above is not kept);
    # s = 3: 64 passes with nothing below; s = 4 never passes
    assert sorted(zip(kept["s"], kept["d"])) == [(2, 64), (2, 128), (3, 64)]


def test_grid_edge_flags_the_ends_of_the_k_grid_including_p_at_one():
    rows = pd.DataFrame({"d": [1000, 1000, 1000, 50], "K": [5.0, 20.0, 160.0, 50.0]})
    # K = 5 and 160 are the grid's ends; at d = 50, p = 1 gives K = d = 50, the densest reachable
    assert epsilon.grid_edge(rows, [5, 10, 20, 40, 80, 160]).tolist() == [True, False, True, True]


def test_neurons_needed_by_sparsity_needs_more_neurons_for_more_features_on():
    sample = epsilon.Sample(n_inputs=10, n_candidates=200, n_hard=16)
    widths = [round(32 * 2 ** (k / 2)) for k in range(17)]
    evaluations, needed = epsilon.neurons_needed_by_sparsity(
        40, [2, 4], widths, [5, 10, 20, 40, 80], 0.9, network_seeds=[0], sample=sample)
    assert needed["n_active"].tolist() == [2, 4] and np.isfinite(needed["d_star"]).all()
    # each s is scored at its own sparsity: a search that ignored s would give one d* for both
    assert needed["d_star"].iloc[1] > 2 * needed["d_star"].iloc[0]
    assert set(evaluations["n_active"]) == {2, 4}
    for _, row in needed.iterrows():   # d* lies between the bracketing widths of that s
        best = epsilon.best(evaluations[evaluations["n_active"] == row["n_active"]]).set_index("d")["epsilon"]
        assert row["d_star"] <= best[best <= 0.9].index.min()


@pytest.mark.parametrize(("s", "name"), [([], "n_active"), ([1, 2], "n_active"), ([2.5], "n_active")])
def test_neurons_needed_by_sparsity_rejects_bad_sparsities(s, name):
    with pytest.raises(ValueError, match=name):
        epsilon.neurons_needed_by_sparsity(40, s, [32, 64], [10.0], 0.9, network_seeds=[0])


# ---------------------------------------------------------------------------------------- k-tuples
def _brute_force_worst_tuple(B: torch.Tensor, tup: tuple[int, ...], s: int) -> float:
    """max over every input with exactly s of m features on of |read-off - AND| for one k-tuple."""
    m, k = B.shape[1], len(tup)
    inputs = torch.tensor(list(itertools.combinations(range(m), s)))
    act = uand.activation(uand.preactivation_basis(B, inputs), -(k - 1.0))
    values, _ = uand.and_readout(act, B, torch.tensor(tup).expand(len(inputs), 1, k))
    target = torch.tensor([[all(f in row for f in tup)] for row in inputs.tolist()])
    return float((values - target.float()).abs().max())


@pytest.mark.parametrize(("k", "s"), [(3, 3), (3, 4), (3, 5), (4, 5)])
def test_k_and_worst_case_equals_brute_force_over_every_sparse_input(k, s):
    m, d = 11, 120
    B = uand.connection_matrix(m, d, 0.55, torch.Generator().manual_seed(10 * k + s))
    tuples = epsilon.candidate_tuples(m, k, 6, seed=k + s)
    _, overlaps, counts = epsilon.tuple_partners(B, tuples, s - k + 1)
    worst = epsilon.worst_case_tuples(overlaps, counts, s, k)
    for q, tup in enumerate(tuples.tolist()):
        assert worst[q].item() == pytest.approx(_brute_force_worst_tuple(B, tuple(tup), s), abs=1e-6)


def test_the_tuple_worst_case_at_k_2_is_the_pair_worst_case():
    # shared_counts and top_partners are tuple_counts and tuple_partners at k = 2 (tested above)
    B = uand.connection_matrix(40, 300, 0.3, torch.Generator().manual_seed(0))
    pairs = epsilon.candidate_pairs(40, 50, seed=2)
    _, overlaps, counts = epsilon.tuple_partners(B, pairs, 2)
    torch.testing.assert_close(epsilon.worst_case_tuples(overlaps, counts, 3, 2),
                               epsilon.worst_case_basis(overlaps, counts, 3))


def test_candidate_and_hard_tuples():
    tuples = epsilon.candidate_tuples(30, 3, 500, seed=1)
    assert tuples.shape == (500, 3) and (tuples[:, 1:] > tuples[:, :-1]).all()   # sorted, distinct
    assert tuples.min() >= 0 and tuples.max() < 30 and len(torch.unique(tuples[:, 0])) > 20
    B = uand.connection_matrix(30, 400, 0.4, torch.Generator().manual_seed(3))
    counts = (B[:, tuples[:, 0]] & B[:, tuples[:, 1]] & B[:, tuples[:, 2]]).sum(0)   # |N_T| directly
    assert torch.equal(epsilon.tuple_counts(B, tuples), counts)
    hard = epsilon.hard_tuples(B, tuples, 8)
    assert epsilon.tuple_counts(B, hard).max() <= counts.sort().values[7]
    errors = epsilon.tuple_hard_errors(B, tuples, 8, 4)
    assert set(errors) == set(epsilon.SOURCES[1:]) and all(e.shape == (8,) for e in errors.values())
    assert errors[epsilon.SOURCES[2]].max() >= errors[epsilon.SOURCES[1]].max()   # fewer neurons: worse
    with pytest.raises(ValueError, match="k must"):
        epsilon.candidate_tuples(30, 1, 5, seed=0)
    with pytest.raises(ValueError, match="k must"):
        epsilon.worst_case_tuples(torch.zeros(1, 1, dtype=torch.long), torch.ones(1, dtype=torch.long), 3, 4)


def test_best_judges_each_group_on_its_own_grid():
    # two widths whose p grids do not overlap: the middle of each is not an edge, although the
    # pooled grid's ends are elsewhere (a grid that moves with d, as p = sqrt(K/d) does)
    table = pd.DataFrame({"m": 10, "seed_network": 0, "d": [100] * 3 + [400] * 3,
                          "p": [0.1, 0.2, 0.4, 0.05, 0.1, 0.2], "epsilon": [0.9, 0.5, 0.8, 0.9, 0.4, 0.7]})
    rows = epsilon.best(table).set_index("d")
    assert rows["p"].tolist() == [0.2, 0.1] and not rows["at_edge"].any()
    table.loc[table["d"] == 400, "epsilon"] = [0.1, 0.4, 0.7]
    assert epsilon.best(table).set_index("d")["at_edge"].tolist() == [False, True]
