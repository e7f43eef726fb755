import math

import numpy as np
import pytest
import torch

from toysup.persian_rug import activations, evaluate, model, theory, train
from toysup.persian_rug.model import AutoencoderConfig

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
    assert math.isclose(cfg.schedule(5, 10), 0.505)
    assert math.isclose(cfg.learning_rate(2048), 5e-4)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_steps": 0}, "n_steps"), ({"batch": -1}, "batch"), ({"lr0": 0.0}, "lr0"),
    ({"final_lr_fraction": 1.5}, "final_lr_fraction"), ({"lr0": math.inf}, "lr0"),
    ({"betas": (1.5, 0.9)}, "betas"), ({"betas": (0.9,)}, "betas"), ({"eps": -1.0}, "eps"),
    ({"plateau": 1.0}, "plateau"), ({"check_every": 0}, "check_every"),
    ({"min_steps": -1}, "min_steps"), ({"n_steps": 100, "min_steps": 101}, "min_steps"),
])
def test_bad_train_config_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train.TrainConfig(**kwargs)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"feature_prob": 0.0}, "feature_prob"), ({"feature_prob": [0.1, 0.2, 0.3]}, "feature_prob"),
    ({"seed": [1, 2, 3]}, "seed"), ({"device": "tpu"}, "device"), ({"seed": -1}, "seed"),
    ({"seed": [2 ** 64, 1]}, "seed"), ({"seed": 1.5}, "seed"),
])
def test_bad_fit_arguments_are_named(kwargs, match):
    args = {"model": model.AutoencoderConfig(8, 2, 2), "feature_prob": 0.1, "train": SHORT} | kwargs
    with pytest.raises(ValueError, match=match):
        train.fit(**args, progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="device 'cuda'"):
        train.fit(model.AutoencoderConfig(8, 2), 0.1, SHORT, device="cuda", progress=False)


def test_numpy_integer_seed_is_the_same_as_the_int():
    cfg = model.AutoencoderConfig(16, 4, 2)
    a = train.fit(cfg, 0.1, train.TrainConfig(n_steps=5, batch=32), seed=np.int64(3), progress=False)
    b = train.fit(cfg, 0.1, train.TrainConfig(n_steps=5, batch=32), seed=3, progress=False)
    assert torch.equal(a.history, b.history)


def test_blocks_of_instances_change_no_instance(monkeypatch):
    cfg = model.AutoencoderConfig(64, 16, n_instances=5)
    whole = train.fit(cfg, [0.05, 0.1, 0.2, 0.3, 0.4], SHORT, seed=2, progress=False)
    monkeypatch.setattr(train, "BLOCK_FLOATS", 2 * 256 * 64)        # blocks of 2, 2 and 1
    assert [b.stop - b.start for b in train.instance_blocks(5, 256, 64)] == [2, 2, 1]
    blocked = train.fit(cfg, [0.05, 0.1, 0.2, 0.3, 0.4], SHORT, seed=2, progress=False)
    torch.testing.assert_close(blocked.history, whole.history, rtol=1e-5, atol=1e-8)
    for got, want in zip(blocked.params.tensors(), whole.params.tensors()):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_plateau_gain_of_a_flat_and_of_a_falling_history():
    steps = torch.tensor([80, 80])
    flat = torch.full((80, 2), 0.5)
    assert torch.equal(train.plateau_gain(flat, steps), torch.zeros(2, dtype=torch.float64))
    falling = torch.linspace(2.0, 1.0, 80)[:, None].repeat(1, 2)   # S(60) − S(80) = 20 steps' fall
    gain = train.plateau_gain(falling, steps)
    s_now, s_then = falling[70:80, 0].double().mean(), falling[50:60, 0].double().mean()
    torch.testing.assert_close(gain, ((s_then - s_now) / s_now).repeat(2))
    with pytest.raises(ValueError, match="steps"):
        train.plateau_gain(flat, torch.tensor([4, 80]))


def test_plateau_stops_each_instance_on_its_own_loss():
    """p = 0.4 and p = 0.02 converge at different checks; each leaves the constant phase at the first
    check where its gain is below the threshold, anneals for a quarter of those steps and stops, and
    equals the same instance trained alone with the same seed."""
    cfg = model.AutoencoderConfig(64, 16, n_instances=3)
    config = train.TrainConfig(n_steps=3000, batch=256, plateau=0.01, check_every=50)
    seeds = train.spawn_seeds(4, 3)
    result = train.fit(cfg, [0.4, 0.02, 0.1], config, seed=seeds, progress=False)
    at = result.plateau_steps
    assert bool((at % 50 == 0).all()) and bool((at >= 200).all()) and len(set(at.tolist())) == 3
    assert torch.equal(result.met_steps, at) and bool(result.converged().all())
    assert result.history.shape == (config.total_steps, 3) == (3750, 3)
    for i, t in enumerate(at.tolist()):
        assert int(result.steps[i]) == t + math.ceil(t / 4)
        assert not bool(result.history[int(result.steps[i]):, i].isfinite().any())
        history = result.history[:, [i]]
        assert float(train.plateau_gain(history, torch.tensor([t]))[0]) < 0.01
        assert t == 200 or float(train.plateau_gain(history, torch.tensor([t - 50]))[0]) >= 0.01
    alone = train.fit(model.AutoencoderConfig(64, 16, 1), 0.02, config, seed=[seeds[1]], progress=False)
    assert alone.plateau_steps.tolist() == [int(at[1])]
    torch.testing.assert_close(alone.history[:, 0], result.history[:, 1], rtol=1e-5, atol=1e-8, equal_nan=True)
    for got, want in zip(result.params.select([1]).tensors(), alone.params.tensors()):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_an_instance_that_never_plateaus_anneals_at_the_cap():
    cfg = model.AutoencoderConfig(64, 16, n_instances=1)
    config = train.TrainConfig(n_steps=250, batch=256, plateau=1e-6, check_every=50)
    result = train.fit(cfg, 0.1, config, seed=1, progress=False)
    assert result.plateau_steps.tolist() == [-1] and result.steps.tolist() == [250 + 63]
    assert result.met_steps.tolist() == [-1] and result.converged().tolist() == [False]


def test_no_instance_leaves_the_constant_phase_before_min_steps():
    """The instances of the test above meet the criterion at different checks from step 200 on; with
    a floor of 600 steps none leaves before it, and each leaves at its first check from there on."""
    cfg = model.AutoencoderConfig(64, 16, n_instances=3)
    config = train.TrainConfig(n_steps=3000, batch=256, plateau=0.01, check_every=50, min_steps=600)
    result = train.fit(cfg, [0.4, 0.02, 0.1], config, seed=train.spawn_seeds(4, 3), progress=False)
    at = result.plateau_steps
    assert bool((at >= 600).all())
    for i, t in enumerate(at.tolist()):
        history = result.history[:, [i]]
        assert float(train.plateau_gain(history, torch.tensor([t]))[0]) < 0.01
        assert t == 600 or float(train.plateau_gain(history, torch.tensor([t - 50]))[0]) >= 0.01


def test_fixed_steps_have_no_plateau_steps():
    result = train.fit(model.AutoencoderConfig(16, 4), 0.1, train.TrainConfig(n_steps=20, batch=32),
                       progress=False)
    assert result.plateau_steps is None and result.steps.tolist() == [20]
    assert result.met_steps.tolist() == [-1]         # no criterion run: converged is the end-of-run reading
    assert result.converged().tolist() == [bool(result.plateau_gain()[0] < train.CONVERGED)]


def test_divergence_names_the_instance_and_the_step():
    cfg = model.AutoencoderConfig(32, 8, n_instances=2)
    with pytest.raises(train.TrainingDiverged, match=r"instance \d \(seed \d+, feature_prob .*step \d+"):
        train.fit(cfg, 0.1, train.TrainConfig(n_steps=400, batch=64, lr0=1e3, check_every=20),
                  progress=False)


@pytest.mark.parametrize("activation", ["relu", "gelu", "jumprelu", "topk_aux"])
def test_first_adam_step_moves_every_weight_against_its_gradient(activation, monkeypatch):
    """Adam's first step is −lr·g/(|g| + eps) elementwise: every entry with a gradient moves against
    it. Failed for W_out on the autograd path (one block), whose gradient is a transposed view:
    fused Adam read it as flat memory and moved half the entries up their gradient."""
    probs = [0.05, 0.1, 0.2]
    kept = activations.kept_from_prob(probs, 64) if activations.get(activation).keeps_k else None
    cfg = AutoencoderConfig(64, 16, 3, activation=activation, n_kept=kept)
    seen = {}
    real = train.loss_and_grads

    def spy(params, batch, *args, **kwargs):
        seen["before"] = [t.clone() for t in params.tensors()]
        out = real(params, batch, *args, **kwargs)
        seen["grads"] = [g.clone() for g in out[1]]
        return out
    monkeypatch.setattr(train, "loss_and_grads", spy)
    after = train.fit(cfg, probs, train.TrainConfig(n_steps=1, batch=256), seed=0, progress=False).params
    for before, grad, now in zip(seen["before"], seen["grads"], after.tensors()):
        moved = (now - before)[grad.abs() > 1e-6]
        assert moved.numel() > 0 and (moved * grad[grad.abs() > 1e-6] < 0).all()
