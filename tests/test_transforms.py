import numpy as np
import pytest
import torch

from toysup.persian_rug import evaluate, model, stats, theory, transforms


def _params(k: int = 2, n: int = 32, m: int = 8, seed: int = 0) -> model.AutoencoderParams:
    gen = torch.Generator().manual_seed(seed)
    cfg = model.AutoencoderConfig(n, m, k)
    enc = torch.randn(k, n, m, generator=gen) / m ** 0.5
    dec = enc + 0.1 * torch.randn(k, n, m, generator=gen)
    return model.AutoencoderParams(cfg, enc, dec, -0.2 + 0.05 * torch.randn(k, n, generator=gen))


P = torch.tensor([0.05, 0.2])


def test_permutation_conjugates_W_and_permutes_b():
    params = _params()
    new = transforms.permute_features(params, torch.Generator().manual_seed(1))
    W, W1 = params.W_eff(), new.W_eff()
    for i in range(2):
        perm = torch.argsort(torch.argsort(new.b[i]))      # recover π from the permuted bias
        order = torch.argsort(params.b[i])[perm]
        torch.testing.assert_close(W1[i], W[i][order][:, order])


@pytest.mark.parametrize("name", ["shuffle_rows", "resample_rows"])
def test_row_transforms_keep_every_row_statistic_and_change_the_weights(name):
    params = _params()
    new = getattr(transforms, name)(params, torch.Generator().manual_seed(2))
    W, W1 = params.W_eff(), new.W_eff()
    torch.testing.assert_close(torch.diagonal(W1, dim1=1, dim2=2), torch.diagonal(W, dim1=1, dim2=2))
    torch.testing.assert_close(stats.mean_interference(W1, P), stats.mean_interference(W, P))
    torch.testing.assert_close(stats.interference_variance(W1, P), stats.interference_variance(W, P))
    torch.testing.assert_close(new.b, params.b)
    assert (W1 - W).abs().max() > 0.1
    if name == "shuffle_rows":
        torch.testing.assert_close(stats.lyapunov_ratio_rows(W1), stats.lyapunov_ratio_rows(W))


def test_shuffling_rows_breaks_antipodal_pairs_but_not_the_loss():
    block = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    W = torch.block_diag(*[block] * 32)[None]
    params = transforms.dense_params(W, torch.zeros(1, 64))
    new = transforms.shuffle_rows(params, torch.Generator().manual_seed(0))
    sym = (new.W_eff()[0] == new.W_eff()[0].T).float().mean()
    assert stats.paired_fraction(new.W_eff()).item() == 1.0      # the −1 is still in every row
    assert sym < 0.99                                           # but no longer at W_ji
    change = evaluate.loss_change(params, new, 0.1, n_samples=20_000)
    assert abs(change.delta.item()) < 4 * change.delta_stderr.item() + 1e-9


def test_gaussian_resampling_removes_heavy_tails():
    block = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    W = torch.block_diag(*[block] * 64)[None]
    new = transforms.resample_rows(transforms.dense_params(W, torch.zeros(1, 128)),
                                   torch.Generator().manual_seed(0))
    p = torch.tensor([0.1])
    assert stats.nu_excess_kurtosis(new.W_eff(), p).mean() < 0.2 * stats.nu_excess_kurtosis(W, p).mean()
    assert stats.paired_fraction(new.W_eff()).item() < 0.2


@pytest.mark.parametrize("n", [64, 48])          # Hadamard rows, and the QR fallback
def test_projector_replacement_is_eq7_with_the_trained_a_and_effective_bias(n):
    params = _params(n=n, m=n // 4)
    new = transforms.projector_replacement(params, P, torch.Generator().manual_seed(3))
    W, W1 = params.W_eff(), new.W_eff()
    a = torch.diagonal(W, dim1=1, dim2=2).mean(dim=1)
    r = new.config.ratio
    P1 = W1 / (a / r)[:, None, None]
    torch.testing.assert_close(P1 @ P1, P1, atol=1e-4, rtol=1e-4)          # a projector
    assert (torch.linalg.matrix_rank(W1) == n // 4).all()
    torch.testing.assert_close(torch.diagonal(W1, dim1=1, dim2=2).mean(dim=1), a)
    eff = stats.effective_bias(W1, new.b, P)
    torch.testing.assert_close(eff, stats.effective_bias(W, params.b, P).mean(dim=1, keepdim=True)
                               .expand_as(eff), atol=1e-5, rtol=1e-5)
    if n == 64:
        torch.testing.assert_close(torch.diagonal(P1, dim1=1, dim2=2), torch.full((2, n), r))
        np.testing.assert_allclose(theory.rank_bound_ratio(W1, n // 4), 1.0, rtol=1e-5)


def test_scaling_the_interference_scales_sigma_and_keeps_the_effective_bias():
    params = _params()
    new = transforms.scale_interference(params, P, 1.5)
    W, W1 = params.W_eff(), new.W_eff()
    torch.testing.assert_close(stats.interference_variance(W1, P),
                               2.25 * stats.interference_variance(W, P))
    torch.testing.assert_close(stats.effective_bias(W1, new.b, P), stats.effective_bias(W, params.b, P))
    with pytest.raises(ValueError, match="factor"):
        transforms.scale_interference(params, P, 0.0)


def test_loss_change_is_zero_for_the_same_model_and_paired():
    params = _params()
    same = transforms.dense_params(params.W_eff(), params.b)
    change = evaluate.loss_change(params, same, P, n_samples=4096)
    torch.testing.assert_close(change.delta, torch.zeros(2, dtype=torch.float64), atol=1e-7, rtol=0)
    assert (change.stderr > 0).all()


def test_permutation_leaves_the_loss_unchanged_within_noise():
    params = _params()
    new = transforms.permute_features(params, torch.Generator().manual_seed(5))
    change = evaluate.loss_change(params, new, P, n_samples=20_000)
    assert (change.delta.abs() < 4 * change.delta_stderr + 1e-9).all(), change


def test_loss_change_rejects_mismatched_models():
    with pytest.raises(ValueError, match="after"):
        evaluate.loss_change(_params(n=32), _params(n=16), P, n_samples=100)
