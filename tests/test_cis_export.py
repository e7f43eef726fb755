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
    assert back["metadata"]["seed"] == 0


@pytest.mark.parametrize("kind", ["sparse", "superposed"])
def test_uand_metadata_is_the_accuracy_recomputed_from_the_file(tmp_path, kind):
    """The loader's documented recipe (module docstring) gives back the stored error entry."""
    g = torch.Generator().manual_seed(1)
    model = and_mlp.construct(kind, 16, 60, n_shared=6, d_input=12 if kind == "superposed" else None,
                              generator=g)
    x = uand.sample_exactly_s(40, 16, 2, g)
    back = cis_export.load_uand(cis_export.export_uand(model, x, path=tmp_path / "u.safetensors"))
    assert (back["model"].embedding is None) == (kind == "sparse")
    again = and_mlp.error_table(back["model"], back["inputs"], back["pairs"]).set_index("case").loc["all"]
    stored = back["metadata"]["error"]
    assert set(stored) == {"mean", "q99", "q999", "max", "wrong_bits", "mse"}
    for key, value in stored.items():
        assert value == pytest.approx(again[key], abs=1e-7), key
    err = (model(x) - and_mlp.and_targets(x, and_mlp.all_pairs(16))).abs()
    assert stored["max"] == pytest.approx(err.max().item()) and stored["max"] > 0
    assert stored["wrong_bits"] == pytest.approx((err > 0.5).float().mean().item())


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
    # the stored accuracy is recomputed from the file by the loader's documented recipe
    again = and_mlp.error_summary((back["forward"](back["inputs"]) - back["values"])[1:].abs())
    for key, value in back["metadata"]["error"].items():
        assert value == pytest.approx(again[key], abs=1e-4), key


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
