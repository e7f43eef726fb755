import math

import pytest
import torch

from toysup.persian_rug import evaluate, model, theory, train

SHORT = train.TrainConfig(n_steps=60, batch=256)


def test_instances_trained_together_equal_the_same_instances_trained_separately():
    cfg = model.AutoencoderConfig(48, 12, n_instances=2)
    seeds = train.spawn_seeds(7, 2)
    together = train.fit(cfg, [0.05, 0.2], SHORT, seed=seeds, progress=False)
    for i, p in enumerate([0.05, 0.2]):
        alone = train.fit(model.AutoencoderConfig(48, 12, 1), p, SHORT, seed=[seeds[i]],
                          progress=False)
        for got, want in zip(together.params.select([i]).tensors(), alone.params.tensors()):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(together.history[:, i], alone.history[:, 0], rtol=1e-5, atol=1e-8)


def test_same_seed_gives_identical_results_and_other_seed_does_not():
    cfg = model.AutoencoderConfig(32, 8, n_instances=3)
    first = train.fit(cfg, 0.1, SHORT, seed=3, progress=False)
    again = train.fit(cfg, 0.1, SHORT, seed=3, progress=False)
    other = train.fit(cfg, 0.1, SHORT, seed=4, progress=False)
    assert torch.equal(first.history, again.history)
    for a, b in zip(first.params.tensors(), again.params.tensors()):
        assert torch.equal(a, b)
    assert not torch.equal(first.history, other.history)


def test_history_has_one_loss_per_step_and_instance_and_loss_falls():
    cfg = model.AutoencoderConfig(64, 16, n_instances=2)
    result = train.fit(cfg, 0.1, train.TrainConfig(n_steps=300, batch=512), seed=0, progress=False)
    assert result.history.shape == (300, 2)
    start, end = result.history[:10].mean(0), result.history[-10:].mean(0)
    assert (end < 0.7 * start).all(), (start, end)


def test_trained_linear_autoencoder_reaches_the_optimal_linear_loss():
    """R12: the best affine autoencoder of width m has loss v(p)(1 − r) (a 2 % band: optimiser and
    minibatch noise; the authors' formula (p/3)(n−m−1)/n is 35 % higher here and would fail)."""
    n, m, p = 64, 16, 0.3
    cfg = model.AutoencoderConfig(n, m, 1, activation="linear")
    result = train.fit(cfg, p, train.TrainConfig(n_steps=1500, batch=1024, lr0=1e-2), seed=0,
                       progress=False)
    loss, se = evaluate.expected_loss(result.params, p, n_samples=50_000)
    expected = theory.linear_loss(p, m / n)
    assert abs(loss.item() / expected - 1) < 0.02, (loss.item(), expected, se.item())
    assert abs(theory.linear_loss_authors_code(p, n, m) / expected - 1) > 0.2


def test_schedule_is_cosine_from_one_to_the_final_fraction():
    cfg = train.TrainConfig(n_steps=100, final_lr_fraction=0.01)
    assert cfg.schedule(0) == 1.0
    assert math.isclose(cfg.schedule(50), 0.505)
    assert math.isclose(cfg.schedule(100), 0.01)
    assert math.isclose(cfg.learning_rate(2048), 5e-4)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_steps": 0}, "n_steps"), ({"batch": -1}, "batch"), ({"lr0": 0.0}, "lr0"),
    ({"final_lr_fraction": 1.5}, "final_lr_fraction"),
])
def test_bad_train_config_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train.TrainConfig(**kwargs)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"feature_prob": 0.0}, "feature_prob"), ({"feature_prob": [0.1, 0.2, 0.3]}, "feature_prob"),
    ({"seed": [1, 2, 3]}, "seed"), ({"device": "tpu"}, "device"),
])
def test_bad_fit_arguments_are_named(kwargs, match):
    args = {"model": model.AutoencoderConfig(8, 2, 2), "feature_prob": 0.1, "train": SHORT} | kwargs
    with pytest.raises(ValueError, match=match):
        train.fit(**args, progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="device 'cuda'"):
        train.fit(model.AutoencoderConfig(8, 2), 0.1, SHORT, device="cuda", progress=False)
