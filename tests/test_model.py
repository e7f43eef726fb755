import pytest
import torch

from toysup.persian_rug import calibrate, data, model

CPU = torch.device("cpu")


def _setup(tied: bool, activation: str, k: int = 3, n: int = 40, m: int = 10):
    cfg = model.AutoencoderConfig(n, m, k, tied=tied, activation=activation)
    params = model.init_params(cfg, data.make_generators(list(range(k)), CPU))
    batch = data.sample_sparse(torch.tensor([0.05, 0.3, 1.0][:k]), 500, n,
                               data.make_generators(list(range(10, 10 + k)), CPU))
    return cfg, params, batch


@pytest.mark.parametrize("sparse_grad", [False, True])
@pytest.mark.parametrize("dense,dense_grad", [(True, None), (False, False), (False, True)])
@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_hand_written_gradients_match_autograd(tied, activation, dense, dense_grad, sparse_grad):
    _, params, batch = _setup(tied, activation)
    _assert_matches_autograd(params, batch, dense=dense, sparse_grad=sparse_grad, dense_grad=dense_grad)


def test_the_encoder_gradient_goes_dense_above_the_machines_density_at_m(monkeypatch):
    """dense_transpose compares the batch's density with d* at the model's width (a stand-in
    measurement here: d* 0.01 at m = 16, 0.5 at m = 512)."""
    monkeypatch.setattr(calibrate, "thresholds",
                        lambda device, k, batch, n, m: calibrate.Thresholds(0.2, 0.01 if m == 16 else 0.5))
    gens = data.make_generators([0], CPU)
    batch = data.sample_sparse(torch.tensor([0.05]), 400, 200, gens)
    assert 0.01 < batch.values.numel() / (400 * 200) < 0.5
    assert model.dense_transpose(batch, 16) and not model.dense_transpose(batch, 512)


def test_a_negative_bias_takes_the_sparse_backward_products_and_keeps_the_gradients(monkeypatch):
    """At a bias of -0.3 few outputs are on: the rule picks g's non-zero entries, and the gradients
    still match autograd (they would not if an entry were dropped or placed in the wrong row)."""
    _, params, batch = _setup(False, "relu", k=2, n=300, m=64)
    params = model.AutoencoderParams(params.config, params.encoder, params.decoder,
                                     torch.full_like(params.b, -0.3))
    monkeypatch.setattr(calibrate, "thresholds", lambda device, k, batch, n, m: calibrate.Thresholds(0.18, 0.1))
    chosen, rule = [], model.sparse_output
    monkeypatch.setattr(model, "sparse_output", lambda g, m: chosen.append(rule(g, m)) or chosen[-1])
    _assert_matches_autograd(params, batch)
    assert chosen == [True]


def test_the_backward_rule_follows_the_fraction_of_outputs_on_against_the_machines_crossover(monkeypatch):
    """Below f* the entries, above it the bmm; f is counted on the first samples of each instance
    (COUNTED_ENTRIES), so outputs on in later samples only do not count."""
    monkeypatch.setattr(model, "COUNTED_ENTRIES", 2 * 10 * 50)        # the first 10 samples of each
    monkeypatch.setattr(calibrate, "thresholds", lambda device, k, batch, n, m: calibrate.Thresholds(0.1, 0.1))
    g = torch.zeros(2, 100, 50)
    g[0, :10].view(-1)[:99] = 1.0                                     # 99 of the 1,000 counted on
    assert model.sparse_output(g, 64)
    g[:, 10:] = 1.0                                                   # all samples after them on
    assert model.sparse_output(g, 64)
    g[0, :10].view(-1)[:101] = 1.0
    assert not model.sparse_output(g, 64)


def _assert_matches_autograd(params, batch, **path):
    """loss_and_grads against float64 autograd through ``model.forward`` on the dense x."""
    cfg, tied = params.config, params.config.tied
    leaves = [t.double().requires_grad_() for t in params.tensors()]
    ref = model.AutoencoderParams(cfg, leaves[0], leaves[0] if tied else leaves[1], leaves[-1])
    x = batch.dense().double()
    ref_loss = model.loss_per_instance(x, model.forward(ref, x))
    ref_grads = torch.autograd.grad(ref_loss.sum(), leaves)
    loss, grads = model.loss_and_grads(params, batch, **path)
    torch.testing.assert_close(loss.double(), ref_loss.detach(), rtol=1e-5, atol=1e-8)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-6 * want.abs().max().item())


def test_instances_do_not_share_gradients():
    cfg, params, _ = _setup(False, "relu")
    leaves = [t.clone().requires_grad_() for t in params.tensors()]
    ref = model.AutoencoderParams(cfg, leaves[0], leaves[1], leaves[2])
    x = data.sample_features(torch.tensor([0.1, 0.5, 1.0]), 64, cfg.n_features,
                             data.make_generators([1, 2, 3], CPU))
    loss = model.loss_per_instance(x, model.forward(ref, x))
    for grad in torch.autograd.grad(loss[0], leaves):
        assert grad[1:].abs().max() == 0 and grad[0].abs().max() > 0


def test_default_initialisation_is_nn_linear():
    n, m = 400, 100
    params = model.init_params(model.AutoencoderConfig(n, m, 2), data.make_generators([0, 1], CPU))
    for tensor, fan_in in [(params.W_in, n), (params.W_out, m), (params.b, m)]:
        bound = fan_in ** -0.5
        assert tensor.abs().max() <= bound
        std = tensor.std().item()
        assert abs(std - bound / 3 ** 0.5) < 0.05 * bound, (std, bound)
    assert params.W_in.shape == (2, m, n) and params.W_out.shape == (2, n, m)


def test_tied_model_shares_one_matrix_and_W_eff_is_WtW():
    cfg = model.AutoencoderConfig(20, 5, 2, tied=True)
    params = model.init_params(cfg, data.make_generators([0, 1], CPU))
    assert params.decoder is params.encoder and len(params.tensors()) == 2
    W = params.W_in
    torch.testing.assert_close(params.W_eff(), W.transpose(1, 2) @ W)


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("activation", ["relu", "linear", "gelu"])
def test_residual_matches_the_dense_forward(dense, activation):
    _, params, batch = _setup(False, activation)
    fwd = model.residual(params, batch, dense=dense)
    x = batch.dense()
    y = model.forward(params, x)
    torch.testing.assert_close(fwd.diff, (y - x).transpose(0, 1), rtol=1e-5, atol=1e-6)
    assert (fwd.x is not None) == dense
    if activation == "relu":    # gate <= 0 marks pre <= 0: where y = 0, at the entries the path masks
        pre_off = (y == 0).transpose(0, 1)
        want = pre_off if dense else pre_off.reshape(-1)[batch.flat]
        assert torch.equal(fwd.gate <= 0, want)
    else:
        assert fwd.gate is None


@pytest.mark.parametrize("n", [200, model.LARGE_INPUT])
def test_the_path_follows_the_density_of_the_batch(n):
    gens = data.make_generators([0, 1], CPU)
    rule = model.dense_threshold(n)
    sparse = data.sample_sparse(torch.tensor([rule / 2, rule / 2]), 400, n, gens)
    dense = data.sample_sparse(torch.tensor([rule * 1.5, rule * 1.5]), 400, n, gens)
    assert not model.dense_input(sparse) and model.dense_input(dense)


def test_the_threshold_rises_from_large_inputs_on():
    assert model.dense_threshold(model.LARGE_INPUT - 1) == model.DENSE_INPUT
    assert model.dense_threshold(model.LARGE_INPUT) == model.DENSE_INPUT_LARGE > model.DENSE_INPUT


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_features": 0, "d_hidden": 1}, "n_features"),
    ({"n_features": 10, "d_hidden": 11}, "d_hidden"),
    ({"n_features": 10, "d_hidden": 0}, "d_hidden"),
    ({"n_features": 10, "d_hidden": 2, "n_instances": 0}, "n_instances"),
    ({"n_features": 10, "d_hidden": 2, "activation": "tanh"}, "activation"),
])
def test_bad_configurations_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.AutoencoderConfig(**kwargs)


def test_forward_rejects_wrong_shapes():
    _, params, _ = _setup(False, "relu")
    with pytest.raises(ValueError, match="x must have shape"):
        model.forward(params, torch.zeros(5, 2, 40))


@pytest.mark.parametrize(("n", "ratio", "expected"), [
    (512, 0.25, 128),     # exact
    (64, 0.1, 6),         # 6.4
    (2048, 0.1, 204),     # 204.8: floored, as the spec and the authors' code, not rounded
    (64, 0.45, 28),       # 28.8
    (64, 0.001, 1),       # never below one unit
    (64, 1.0, 64),
])
def test_hidden_width_floors_r_times_n_into_one_to_n(n, ratio, expected):
    m = model.hidden_width(n, ratio)
    assert m == expected and isinstance(m, int)
    model.AutoencoderConfig(n, m)                  # always a valid width


@pytest.mark.parametrize(("args", "match"), [((64, 0.0), "ratio"), ((64, 1.5), "ratio"),
                                             ((0, 0.5), "n_features")])
def test_hidden_width_names_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        model.hidden_width(*args)


def test_a_block_of_instances_is_a_view_with_its_own_config():
    cfg = model.AutoencoderConfig(10, 3, n_instances=4, activation="topk", n_kept=(1, 2, 3, 4))
    params = model.init_params(cfg, data.make_generators([0, 1, 2, 3], torch.device("cpu")))
    block = params.instances(slice(1, 3))
    assert block.config.n_instances == 2 and block.config.n_kept == (2, 3)
    assert block.encoder.data_ptr() == params.encoder[1].data_ptr()
    assert torch.equal(block.b, params.b[1:3])


def test_n_kept_outside_topk_is_refused():
    with pytest.raises(ValueError, match="n_kept"):
        model.AutoencoderConfig(10, 3, activation="relu", n_kept=2)


@pytest.mark.parametrize("prob", [0.02, 0.5])      # the sparse and the dense encoder product
def test_autograd_path_matches_autograd_at_both_densities(prob):
    cfg = model.AutoencoderConfig(60, 12, 2, activation="gelu")
    params = model.init_params(cfg, data.make_generators([0, 1], CPU))
    batch = data.sample_sparse(torch.tensor([prob, prob]), 300, 60, data.make_generators([5, 6], CPU))
    assert model.dense_input(batch) == (prob > model.dense_threshold(60))
    _assert_matches_autograd(params, batch)
