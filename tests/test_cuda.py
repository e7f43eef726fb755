"""The trainer's code paths on CUDA (issue 14: every path must also run there). On a machine without
CUDA every test here is skipped with that reason; CI runs on such machines, so these run only where a
GPU is present (none was available to the session that wrote them: they have not been run yet)."""
import pytest
import torch

from toysup.persian_rug import activations, data, model, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this machine has none")
CPU, PROBS = torch.device("cpu"), [0.05, 0.3, 1.0]


def _pair(activation: str, n: int = 40, m: int = 10):
    """The same parameters and batch on the CPU and on CUDA."""
    kept = activations.kept_from_prob(PROBS, n) if activations.get(activation).keeps_k else None
    cfg = model.AutoencoderConfig(n, m, len(PROBS), activation=activation, n_kept=kept)
    params = model.init_params(cfg, data.make_generators([0, 1, 2], CPU))
    batch = data.sample_sparse(torch.tensor(PROBS), 256, n, data.make_generators([10, 11, 12], CPU))
    cuda = torch.device("cuda")
    on_gpu = params.with_tensors([t.to(cuda) for t in params.tensors()])
    gpu_batch = data.SparseBatch(batch.values.to(cuda), batch.flat.to(cuda), batch.n_instances, batch.batch,
                                 batch.n_features)
    return (params, batch), (on_gpu, gpu_batch)


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("name", sorted(activations.REGISTRY))
def test_loss_and_grads_on_cuda_match_the_cpu(name, dense):
    (params, batch), (gpu_params, gpu_batch) = _pair(name)
    loss, grads = model.loss_and_grads(params, batch, dense)
    gpu_loss, gpu_grads = model.loss_and_grads(gpu_params, gpu_batch, dense)
    torch.testing.assert_close(gpu_loss.cpu(), loss, rtol=1e-4, atol=1e-7)
    for got, want in zip(gpu_grads, grads):
        torch.testing.assert_close(got.cpu(), want, rtol=1e-3, atol=1e-5 * want.abs().max().item())


@pytest.mark.parametrize("name", sorted(activations.REGISTRY))
def test_fit_trains_every_activation_on_cuda(name):
    kept = activations.kept_from_prob([0.05, 0.1], 32) if activations.get(name).keeps_k else None
    cfg = model.AutoencoderConfig(32, 8, 2, activation=name, n_kept=kept)
    result = train.fit(cfg, [0.05, 0.1], train.TrainConfig(n_steps=200, batch=256, plateau=0.005),
                       seed=[0, 1], device="cuda", progress=False)
    assert result.params.encoder.is_cuda and (result.steps > 0).all()
    assert all(torch.isfinite(t).all() for t in result.params.tensors())
