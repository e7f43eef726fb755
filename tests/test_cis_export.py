import pytest
import torch

from toysup.cis import and_mlp, deep_circuits as dc, export as cis_export, uand


def test_uand_round_trip(tmp_path):
    g = torch.Generator().manual_seed(0)
    model = and_mlp.construct("sparse", 10, 80, n_shared=8, generator=g)
    x = uand.sample_exactly_s(20, 10, 2, g)
    path = cis_export.export_uand(model, x, metadata={"seed": 0}, path=tmp_path / "u.safetensors")
    back = cis_export.load_uand(path)
    torch.testing.assert_close(back["model"](back["inputs"]), model(x))
    torch.testing.assert_close(back["targets"], and_mlp.and_targets(x, and_mlp.all_pairs(10)))
    assert back["metadata"] == {"seed": 0}


@pytest.mark.parametrize("network", ["ec", "naive_centred"])
def test_deep_round_trip_dense_weights_reproduce_factored_forward(tmp_path, network):
    circuit = dc.random_circuit(16, 3, gate_prob=0.2, generator=torch.Generator().manual_seed(1))
    config = dc.DeepConfig(d_or=40, d_and=60, n_shared=5)
    x0, truth = dc.sparse_inputs(circuit, 12, 2, generator=torch.Generator().manual_seed(2))
    path = cis_export.export_deep(circuit, config, x0, network=network, net_seed=3,
                                  path=tmp_path / "d.safetensors")
    back = cis_export.load_deep(path)
    Ws = [back["weight"](l) for l in range(1, 4)]
    values = dc.explicit_forward(Ws, back["biases"], back["readoffs"], back["inputs"])
    torch.testing.assert_close(back["forward"](back["inputs"]), values)
    fact, _ = dc.run_network(circuit, config, x0, network=network, net_seed=3)
    torch.testing.assert_close(values, fact, rtol=1e-4, atol=1e-4)
    assert torch.equal(back["values"], truth.float())
    assert torch.equal(back["circuit"].gate_type, circuit.gate_type)
    assert back["metadata"]["network"] == network and back["metadata"]["d_and"] == 60


def test_export_rejects_bad_path_and_kind(tmp_path):
    g = torch.Generator().manual_seed(0)
    model = and_mlp.construct("sparse", 5, 20, n_shared=4, generator=g)
    x = uand.sample_exactly_s(3, 5, 2, g)
    with pytest.raises(ValueError, match="path"):
        cis_export.export_uand(model, x, path=tmp_path / "u.pt")
    path = cis_export.export_uand(model, x, path=tmp_path / "u.safetensors")
    with pytest.raises(ValueError, match="path"):
        cis_export.load_deep(path)
    circuit = dc.random_circuit(6, 2, generator=g)
    deep = cis_export.export_deep(circuit, dc.DeepConfig(d_or=10, d_and=10, n_shared=3),
                                  uand.sample_exactly_s(4, 6, 1, g), path=tmp_path / "d.safetensors")
    with pytest.raises(ValueError, match="l must"):
        cis_export.load_deep(deep)["weight"](3)


def test_default_dir_is_the_repos_outputs_folder():
    assert cis_export.default_dir().parts[-2:] == ("outputs", "cis_export")
