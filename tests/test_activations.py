import math

import pytest
import torch

from toysup.persian_rug import activations, data, evaluate, model, train

CPU = torch.device("cpu")
PROBS = [0.05, 0.3, 1.0]


def _setup(activation: str, k: int = 3, n: int = 40, m: int = 10, tied: bool = False):
    kept = activations.kept_from_prob(PROBS[:k], n) if activations.get(activation).keeps_k else None
    cfg = model.AutoencoderConfig(n, m, k, tied=tied, activation=activation, n_kept=kept)
    params = model.init_params(cfg, data.make_generators(list(range(k)), CPU))
    if "threshold" in params.extra:   # spread the thresholds so that every window is populated
        params.extra["threshold"] = torch.linspace(0.05, 0.3, n).repeat(k, 1)
    batch = data.sample_sparse(torch.tensor(PROBS[:k]), 500, n,
                               data.make_generators(list(range(10, 10 + k)), CPU))
    return cfg, params, batch


@pytest.mark.parametrize("name", sorted(activations.REGISTRY))
def test_forward_shape_and_registry(name):
    _, params, batch = _setup(name)
    x = batch.dense()
    y = model.forward(params, x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert activations.get(name).name == name


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("name", ["jumprelu", "gelu", "topk"])
@pytest.mark.parametrize("tied", [False, True])
def test_loss_and_grads_match_dense_autograd(name, dense, tied):
    """The hand-written backward passes of JumpReLU (θ by the straight-through estimator, as autograd
    through ``_JumpFunction``), GELU and TopK on both input paths."""
    cfg, params, batch = _setup(name, tied=tied)
    leaves = [t.double().requires_grad_() for t in params.tensors()]
    ref = params.with_tensors(leaves)
    x = batch.dense().double()
    ref_loss = model.loss_per_instance(x, model.forward(ref, x))
    ref_grads = torch.autograd.grad(ref_loss.sum(), leaves)
    loss, grads = model.loss_and_grads(params, batch, dense)
    assert len(grads) == len(params.tensors())
    torch.testing.assert_close(loss.double(), ref_loss.detach(), rtol=1e-5, atol=1e-8)
    for got, want in zip(grads, ref_grads):
        assert got.shape == want.shape
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5 * want.abs().max().item())


@pytest.mark.parametrize("dense", [True, False])
def test_jumprelu_below_zero_thresholds_gate_on_pre_minus_theta_not_on_y(dense):
    """θ < 0 passes pre ∈ (θ, 0], where y = pre ≤ 0: a gate on y (ReLU's) would zero those gradients.
    The residual's gate is ≤ 0 exactly where pre ≤ θ, and every gradient still matches autograd."""
    cfg, params, batch = _setup("jumprelu")
    params.extra["threshold"] = torch.linspace(-0.3, 0.1, cfg.n_features).repeat(cfg.n_instances, 1)
    x = batch.dense()
    on = model.forward(params, x) != 0    # pre > θ (pre = 0 exactly has probability 0)
    fwd = model.residual(params, batch, dense=dense)
    off = ~on.transpose(0, 1)
    assert torch.equal(fwd.gate <= 0, off if dense else off.reshape(-1)[batch.flat])
    assert (fwd.diff.transpose(0, 1)[on & (x == 0)] < 0).any()     # outputs on below zero exist
    leaves = [t.double().requires_grad_() for t in params.tensors()]
    ref_loss = model.loss_per_instance(x.double(), model.forward(params.with_tensors(leaves), x.double()))
    ref_grads = torch.autograd.grad(ref_loss.sum(), leaves)
    _, grads = model.loss_and_grads(params, batch, dense)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5 * want.abs().max().item())


def test_gelu_gradient_matches_finite_differences():
    cfg, params, batch = _setup("gelu", k=1, n=12, m=4)
    params = params.with_tensors([t.double() for t in params.tensors()])
    x = batch.dense().double()

    def loss_of_b(b):
        return model.loss_per_instance(x, model.forward(params.with_tensors(
            [params.encoder, params.decoder, b]), x)).sum()

    b = params.b.clone().requires_grad_()
    assert torch.autograd.gradcheck(loss_of_b, (b,))


def test_jumprelu_straight_through_gradient_is_the_derivative_of_the_expected_loss():
    # pre ~ U[0, 1], target t: E(pre·1[pre > θ] − t)² has derivative −θ² + 2θt in θ.
    gen = torch.Generator().manual_seed(0)
    n_samples, theta, target = 400_000, 0.4, 0.1
    pre = torch.rand(1, n_samples, 1, generator=gen, dtype=torch.float64)
    th = torch.full((1, 1), theta, dtype=torch.float64, requires_grad=True)
    y = activations.get("jumprelu")(pre, {"threshold": th}, None)
    ((y - target) ** 2).mean().backward()
    expected = -theta ** 2 + 2 * theta * target
    # the window holds ≈ n·ε samples: relative standard error ≈ 1/sqrt(n·ε)
    se = abs(theta) * 2 * 0.5 / math.sqrt(n_samples * activations.JUMP_BANDWIDTH)
    assert abs(th.grad.item() - expected) < 5 * se, (th.grad.item(), expected, se)


def test_jumprelu_forward_and_pre_gradient_are_exact():
    pre = torch.tensor([[[-0.2, 0.05, 0.15, 0.9]]], requires_grad=True)
    th = torch.full((1, 4), 0.1, requires_grad=True)
    y = activations.get("jumprelu")(pre, {"threshold": th}, None)
    torch.testing.assert_close(y.detach(), torch.tensor([[[0.0, 0.0, 0.15, 0.9]]]))
    (grad_pre,) = torch.autograd.grad(y.sum(), pre)
    torch.testing.assert_close(grad_pre, torch.tensor([[[0.0, 0.0, 1.0, 1.0]]]))


def test_topk_keeps_exactly_k_per_sample_and_instance():
    gen = torch.Generator().manual_seed(1)
    pre = torch.randn(3, 50, 30, generator=gen)
    pre[1, :, :10] = 0.0                       # ties must not change the count
    kept = torch.tensor([1, 4, 30])
    mask = activations.topk_mask(pre, kept)
    assert (mask.sum(dim=-1) == kept[:, None]).all()
    y = activations.get("topk")(pre, {}, kept)
    assert ((y != 0).sum(dim=-1) <= kept[:, None]).all()
    # the kept entries are the largest ones of their sample
    smallest_kept = torch.where(mask.bool(), pre, torch.inf).amin(dim=-1)
    largest_dropped = torch.where(mask.bool(), -torch.inf, pre).amax(dim=-1)
    assert (smallest_kept[:2] >= largest_dropped[:2]).all()
    torch.testing.assert_close(y, torch.relu(pre) * mask)


def test_aux_residual_by_hand():
    """AuxK on one instance, 2 samples, 4 outputs: output 1 is positive in sample 0, so alive; outputs
    0, 2, 3 are dead; n/2 = 2 of them per sample (the largest pre) enter α·((pre)₊ − x)·1[pre > 0]."""
    pre = torch.tensor([[[-0.5, 0.4, 0.3, 0.1], [0.2, -1.0, -0.1, 0.6]]])
    y = torch.tensor([[[0.0, 0.4, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    x = torch.tensor([[[0.0, 0.5, 0.9, 0.0], [0.7, 0.0, 0.0, 0.0]]])
    # sample 0: dead pre (-0.5, 0.3, 0.1) → outputs 2, 3; sample 1: dead pre (0.2, -0.1, 0.6) → outputs 0, 3
    want = activations.AUX_WEIGHT * torch.tensor([[[0.0, 0.0, 0.3 - 0.9, 0.1], [0.2 - 0.7, 0.0, 0.0, 0.6]]])
    torch.testing.assert_close(activations.get("topk_aux").aux_residual(pre, y, x), want)
    y_two = y.clone()
    y_two[0, 1, 3] = 0.6    # output 3 alive too: 2 dead outputs, all of them enter in both samples
    want_two = activations.AUX_WEIGHT * torch.tensor([[[0.0, 0.0, 0.3 - 0.9, 0.0], [0.2 - 0.7, 0.0, 0.0, 0.0]]])
    torch.testing.assert_close(activations.get("topk_aux").aux_residual(pre, y_two, x), want_two)
    # both as two instances of one call: only the first needs a selection, each keeps its own result
    both = activations.get("topk_aux").aux_residual(pre.repeat(2, 1, 1), torch.cat([y, y_two]), x.repeat(2, 1, 1))
    torch.testing.assert_close(both, torch.cat([want, want_two]))


def _aux_loss_reference(pre, y, x):
    """Gao et al.'s L_aux with the identity as decoder, from its definition: α · mean over batch and
    features of (x − (pre)₊)² on the n/2 largest pre per sample among outputs zero in the whole batch."""
    dead = ~(y.detach() > 0).any(dim=1, keepdim=True)
    order = pre.detach().masked_fill(~dead, -math.inf).argsort(dim=-1, descending=True)
    chosen = torch.zeros_like(pre).scatter(-1, order[..., : pre.shape[-1] // 2], 1.0) * dead
    return activations.AUX_WEIGHT * (chosen * (x - torch.relu(pre)) ** 2).mean(dim=(1, 2))


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("tied", [False, True])
def test_topk_aux_gradient_is_that_of_the_loss_plus_the_aux_loss(dense, tied):
    cfg, params, batch = _setup("topk_aux", tied=tied)
    leaves = [t.double().requires_grad_() for t in params.tensors()]
    ref = params.with_tensors(leaves)
    x = batch.dense().double()
    h = torch.bmm(x.transpose(0, 1), ref.encoder)
    pre = torch.baddbmm(ref.b[:, None, :], h, ref.decoder.transpose(1, 2))
    y = model.forward(ref, x).transpose(0, 1)
    mse = ((y - x.transpose(0, 1)) ** 2).mean(dim=(1, 2))
    aux = _aux_loss_reference(pre, y, x.transpose(0, 1))
    assert (aux > 0).all()                               # the reference does see dead outputs
    want = torch.autograd.grad((mse + aux).sum(), leaves)
    loss, grads = model.loss_and_grads(params, batch, dense)
    torch.testing.assert_close(loss.double(), mse.detach(), rtol=1e-5, atol=1e-8)
    for got, w in zip(grads, want):
        torch.testing.assert_close(got.double(), w, rtol=1e-4, atol=1e-5 * w.abs().max().item())


def test_topk_aux_reports_the_topk_loss_and_changes_only_dead_outputs():
    cfg, params, batch = _setup("topk", k=2)
    aux_cfg = model.AutoencoderConfig(cfg.n_features, cfg.d_hidden, 2, activation="topk_aux",
                                      n_kept=cfg.n_kept)
    with torch.no_grad():   # outputs 0-4 of instance 0: pre = 0.5 < the others' ≈ 5, never kept, dead
        params.decoder[0, :5] = 0.0
        params.b[0, :5], params.b[0, 5:] = 0.5, 5.0
    aux = model.AutoencoderParams(aux_cfg, params.encoder, params.decoder, params.b, params.extra)
    loss, (_, _, grad_b) = model.loss_and_grads(params, batch)
    aux_loss, (_, _, aux_grad_b) = model.loss_and_grads(aux, batch)
    torch.testing.assert_close(aux_loss, loss)
    alive = (model.forward(params, batch.dense()) > 0).any(dim=0)             # (k, n)
    torch.testing.assert_close(aux_grad_b[alive], grad_b[alive])
    assert (grad_b[~alive] == 0).all() and (aux_grad_b[0, :5] != 0).any()


@pytest.mark.parametrize("name", ["jumprelu", "topk", "topk_aux", "gelu"])
def test_instances_are_independent(name):
    cfg, params, batch = _setup(name)
    leaves = [t.clone().requires_grad_() for t in params.tensors()]
    ref = params.with_tensors(leaves)
    x = batch.dense()
    loss = model.loss_per_instance(x, model.forward(ref, x))
    for grad in torch.autograd.grad(loss[0], leaves, allow_unused=True):
        assert grad[1:].abs().max() == 0 and grad[0].abs().max() > 0


def test_extra_tensors_are_trained_and_copied():
    probs = [0.05, 0.1]
    cfg = model.AutoencoderConfig(32, 8, 2, activation="jumprelu")
    result = train.fit(cfg, probs, train.TrainConfig(n_steps=30, batch=256), seed=0, progress=False)
    theta = result.params.extra["threshold"]
    assert theta.shape == (2, 32) and len(result.params.tensors()) == 4
    assert (theta != activations.JUMP_THRESHOLD_INIT).any()
    one = result.params.select([1])
    torch.testing.assert_close(one.extra["threshold"][0], theta[1])
    assert one.extra["threshold"].data_ptr() != theta.data_ptr()


def test_topk_config_and_selection():
    cfg = model.AutoencoderConfig(100, 10, 3, activation="topk", n_kept=(2, 5, 10))
    params = model.init_params(cfg, data.make_generators([0, 1, 2], CPU))
    assert params.select([2, 0]).config.n_kept == (10, 2)
    assert model.AutoencoderConfig(100, 10, 3, activation="topk", n_kept=4).n_kept == (4, 4, 4)
    assert activations.kept_from_prob([0.001, 0.05, 0.5], 100) == (1, 5, 50)


@pytest.mark.parametrize("name", sorted(activations.REGISTRY))
def test_held_out_loss_matches_the_dense_forward_pass(name):
    cfg, params, _ = _setup(name, k=2)
    loss, _ = evaluate.expected_loss(params, PROBS[:2], n_samples=512, batch=256, seed=3)
    gens = data.make_generators([3 + 7919 * i for i in range(2)], CPU)
    xs = [data.sample_sparse(torch.tensor(PROBS[:2]), 256, cfg.n_features, gens).dense()
          for _ in range(2)]
    x = torch.cat(xs)
    dense = model.loss_per_instance(x, model.forward(params, x))
    torch.testing.assert_close(loss, dense, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"activation": "tanh"}, "activation"),
    ({"activation": "topk"}, "n_kept"),
    ({"activation": "topk", "n_kept": (1, 2)}, "n_kept"),
    ({"activation": "topk", "n_kept": 0}, "n_kept"),
])
def test_bad_configurations_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.AutoencoderConfig(20, 5, 3, **kwargs)
    with pytest.raises(ValueError, match="feature_prob"):
        activations.kept_from_prob([0.0], 10)
