import pytest
import torch

from toysup.persian_rug import data, evaluate, model, theory


def _constant_model(k: int, n: int, bias: float) -> model.AutoencoderParams:
    cfg = model.AutoencoderConfig(n, 1, k)
    zeros = torch.zeros(k, n, 1)
    return model.AutoencoderParams(cfg, zeros, zeros.clone(), torch.full((k, n), bias))


@pytest.mark.parametrize("p", [0.02, 0.3])
def test_zero_and_constant_models_have_their_closed_form_losses(p):
    zero, zero_se = evaluate.expected_loss(_constant_model(1, 32, 0.0), p, n_samples=20_000)
    const, const_se = evaluate.expected_loss(_constant_model(1, 32, p / 2), p, n_samples=20_000)
    assert abs(zero.item() - theory.zero_output_loss(p)) < 5 * zero_se.item()
    assert abs(const.item() - theory.feature_variance(p)) < 5 * const_se.item()


def test_standard_error_shrinks_like_one_over_root_n():
    params = _constant_model(2, 16, 0.1)
    _, se_small = evaluate.expected_loss(params, [0.1, 0.4], n_samples=4_000)
    _, se_large = evaluate.expected_loss(params, [0.1, 0.4], n_samples=64_000)
    ratio = se_small / se_large
    assert ((ratio > 3.0) & (ratio < 5.3)).all(), ratio


def test_held_out_loss_matches_the_dense_forward_pass():
    cfg = model.AutoencoderConfig(24, 6, 2)
    params = model.init_params(cfg, data.make_generators([0, 1], torch.device("cpu")))
    loss, se = evaluate.expected_loss(params, [0.2, 0.5], n_samples=30_000)
    x = data.sample_features(torch.tensor([0.2, 0.5]), 30_000, 24,
                             data.make_generators([99, 100], torch.device("cpu")))
    direct = model.loss_per_instance(x, model.forward(params, x))
    assert ((loss - direct).abs() < 5 * se * 2 ** 0.5).all(), (loss, direct, se)


def test_bad_arguments_are_named():
    params = _constant_model(2, 8, 0.0)
    with pytest.raises(ValueError, match="n_samples"):
        evaluate.expected_loss(params, 0.1, n_samples=1)
    with pytest.raises(ValueError, match="feature_prob"):
        evaluate.expected_loss(params, [0.1, 0.2, 0.3])


def test_accumulator_in_chunks_matches_mean_and_standard_error_of_all_samples():
    values = torch.rand(3, 1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    acc = evaluate.LossAccumulator(3)
    for chunk in values.split(300, dim=1):
        acc.add(chunk)
    assert acc.count == 1000
    torch.testing.assert_close(acc.mean(), values.mean(dim=1), rtol=1e-12, atol=0)
    torch.testing.assert_close(acc.stderr(), values.std(dim=1) / 1000 ** 0.5, rtol=1e-9, atol=0)
    one = evaluate.LossAccumulator(1)
    one.add(torch.ones(1, 1))
    assert torch.isnan(one.stderr()).all()
    with pytest.raises(ValueError, match="per_sample"):
        acc.add(torch.zeros(2, 5))


def test_loss_change_of_a_model_against_itself_is_exactly_zero():
    params = _constant_model(2, 8, 0.1)
    change = evaluate.loss_change(params, params, [0.1, 0.3], n_samples=2000)
    assert (change.delta == 0).all() and (change.delta_stderr == 0).all()
    loss, se = evaluate.expected_loss(params, [0.1, 0.3], n_samples=2000, batch=2048)
    torch.testing.assert_close(change.before.float(), loss)
    torch.testing.assert_close(change.stderr.float(), se)
