import math

import pytest
import torch

from toysup.persian_rug import data

CPU = torch.device("cpu")


def _sample(p, batch=4000, n=50, seeds=(1, 2, 3)):
    gens = data.make_generators(list(seeds)[: len(p)], CPU)
    return data.sample_sparse(torch.tensor(p), batch, n, gens)


@pytest.mark.parametrize("p", [0.003, 0.045, 0.3, 0.9])
def test_feature_density_within_five_standard_errors(p):
    batch, n = 4000, 50
    x = _sample([p], batch, n).dense()
    density = (x != 0).double().mean().item()
    se = math.sqrt(p * (1 - p) / (batch * n))
    assert abs(density - p) < 5 * se, f"density {density:.5f}, expected {p} +/- {5 * se:.5f}"


def test_active_values_are_uniform_on_unit_interval():
    x = _sample([0.2], 4000, 50).dense()
    values = x[x != 0].double()
    se_mean = math.sqrt(1 / 12 / values.numel())
    assert abs(values.mean().item() - 0.5) < 5 * se_mean
    assert abs(values.var().item() - 1 / 12) < 0.01 * (1 / 12) * 5
    assert values.min() >= 0 and values.max() < 1
    counts = torch.histc(values, bins=10, min=0, max=1)
    expected = values.numel() / 10
    assert ((counts - expected).abs() < 5 * math.sqrt(expected)).all(), counts


def test_features_are_independent_across_positions():
    """Neighbouring features (consecutive geometric gaps) are uncorrelated."""
    x = _sample([0.1], 20000, 20).dense()[:, 0].double()
    on = (x != 0).double()
    corr = torch.corrcoef(torch.stack([on[:, :-1].reshape(-1), on[:, 1:].reshape(-1)]))[0, 1]
    assert abs(corr.item()) < 5 / math.sqrt(on[:, 1:].numel()), corr


def test_probability_one_turns_every_feature_on():
    x = _sample([1.0], 100, 30).dense()
    assert (x != 0).all()


def test_instance_data_do_not_depend_on_other_instances():
    together = data.sample_sparse(torch.tensor([0.05, 0.3]), 64, 40,
                                  data.make_generators([11, 22], CPU)).dense()
    alone = data.sample_sparse(torch.tensor([0.3]), 64, 40, data.make_generators([22], CPU)).dense()
    torch.testing.assert_close(together[:, 1], alone[:, 0], rtol=0, atol=0)


def test_dense_and_block_diagonal_sparse_forms_agree():
    batch = _sample([0.1, 0.5], 16, 12, seeds=(5, 6))
    x = batch.dense()                                        # (16, 2, 12)
    block = torch.block_diag(x[:, 0], x[:, 1])
    stack, grad = torch.randn(24, 5), torch.randn(32, 5)       # (k·n, m), (k·batch, m)
    torch.testing.assert_close(batch.times(stack), block @ stack)
    torch.testing.assert_close(batch.t_times(grad), block.T @ grad)


def test_an_empty_batch_gives_zero_products():
    batch = data.SparseBatch(torch.zeros(0), torch.zeros(0, dtype=torch.int64), 2, 3, 4)
    assert batch.times(torch.ones(8, 5)).abs().sum() == 0 and batch.times(torch.ones(8, 5)).shape == (6, 5)
    assert batch.t_times(torch.ones(6, 5)).abs().sum() == 0 and batch.t_times(torch.ones(6, 5)).shape == (8, 5)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"feature_prob": torch.tensor([0.0])}, "feature_prob"),
    ({"feature_prob": torch.tensor([1.5])}, "feature_prob"),
    ({"batch": 0}, "batch"),
    ({"n_features": -3}, "n_features"),
])
def test_bad_parameters_are_named(kwargs, match):
    args = {"feature_prob": torch.tensor([0.1]), "batch": 8, "n_features": 4,
            "generators": data.make_generators([0], CPU)} | kwargs
    with pytest.raises(ValueError, match=match):
        data.sample_sparse(**args)


def test_one_generator_per_instance_is_required():
    with pytest.raises(ValueError, match="generators"):
        data.sample_sparse(torch.tensor([0.1, 0.2]), 8, 4, data.make_generators([0], CPU))


def test_instance_probs_spreads_one_value_and_checks_the_count():
    assert data.instance_probs(0.1, 3).tolist() == [0.1, 0.1, 0.1]
    assert data.instance_probs([0.1, 0.2], 2).dtype == torch.float64
    with pytest.raises(ValueError, match="n_instances=3"):
        data.instance_probs([0.1, 0.2], 3)
    with pytest.raises(ValueError, match="feature_prob"):
        data.instance_probs(1.5, 1)


def test_a_block_of_instances_is_what_those_instances_draw_alone():
    p = torch.tensor([0.05, 0.3, 0.1, 0.2], dtype=torch.float64)
    whole = data.sample_sparse(p, 16, 24, data.make_generators([1, 2, 3, 4], torch.device("cpu")))
    alone = data.sample_sparse(p[1:3], 16, 24, data.make_generators([2, 3], torch.device("cpu")))
    block = whole.instances(slice(1, 3))
    assert (block.n_instances, block.batch, block.n_features) == (2, 16, 24)
    assert torch.equal(block.dense(), alone.dense())
    with pytest.raises(ValueError, match="block"):
        whole.instances(slice(0, 4, 2))


def test_the_draws_are_the_documented_stream():
    """Instance i draws 2·budget uniforms from its generator: the first budget give the geometric
    gaps, floor(log(1−u) / log(1−p)), whose running sums (gap + 1 each, minus 1) are the active flat
    positions below batch·n; the next ones, in order, are their values."""
    p, batch, n = [0.2, 0.05], 30, 7
    got = data.sample_sparse(torch.tensor(p), batch, n, data.make_generators([3, 4], CPU))
    total = batch * n
    flats, values = [], []
    for i, (prob, seed) in enumerate(zip(p, (3, 4))):
        budget = data._gap_budget(prob, total)
        draws = torch.rand(2 * budget, generator=torch.Generator().manual_seed(seed)).tolist()
        position = -1
        for j in range(budget):
            position += math.floor(math.log1p(-draws[j]) / math.log1p(-prob)) + 1
            if position >= total:
                break
            flats.append(i * total + position)
            values.append(draws[budget + j])
    assert got.flat.tolist() == flats
    assert got.values.tolist() == values
