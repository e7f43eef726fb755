"""Constructed networks that compute in superposition, exported for interpretability research.

Safetensors files (https://huggingface.co/docs/safetensors; readable from PyTorch, NumPy, JAX,
Rust), written under the repository's git-ignored ``outputs/`` folder:

``uand.safetensors``, ``uand_superposed.safetensors`` -- one hidden ReLU layer computing all
m(m-1)/2 pairwise ANDs (U-AND, spec §2 and §3; ``toysup.cis.and_mlp.construct``):
    W_in (d, m) float32 in {0, 1} (basis-aligned) or (d, d0) = B Phi^T (inputs in superposition),
    embedding (d0, m) float32 (superposed file only: the network's input is Phi x),
    b_in (d,), readoff (P, d), b_out (P,), pairs (P, 2) int64,
    test.inputs (T, m) uint8 (the boolean features x), test.targets (T, P) uint8.
    y_hat = readoff @ ReLU(W_in @ (Phi) x + b_in) + b_out approximates targets (epsilon-linear read-off).

``deep.safetensors`` -- a depth-L ReLU MLP emulating a random sparse boolean circuit with error
correction (spec §5; ``toysup.cis.deep_circuits``). Stored in exact factored form, because the dense
layers are (hidden x hidden):
    layers.{l}.connectivity (D, m) uint8 = [B_or; B_and],  layers.{l}.bias (hidden,),
    layers.{l}.readoff (m, hidden) float32 = R^l,   for l = 1..L;
    circuit.perm / circuit.partner / circuit.gate_type (L, m) int64 (0 COPY, 1 AND, 2 OR);
    test.inputs (T, m) uint8, test.values (L+1, T, m) uint8 (ground-truth gate values per layer).
    Dense weights: W^1 = [C^1; C^1] and W^l = [C^l; C^l] R^{l-1} (l >= 2) for "ec" (for the naive
    networks W^l = C^l R^{l-1}); h^l = ReLU(W^l h^{l-1} + b^l), gate values v_hat^l = R^l h^l.
``load_uand`` / ``load_deep`` return these as tensors; ``load_deep`` also builds each dense W^l on
demand and runs the dense network.

Metadata (config, seeds, network) is in the file header, as JSON strings. Its "error" entry is the
network's measured accuracy on the file's own test set, ``and_mlp.error_summary`` of |y_hat - y|
over every (input, output) entry: "max" (the measured epsilon: a lower bound on the worst case over
all inputs, since only the stored inputs are scored), "mean", "q99", "q999", "wrong_bits" (bit-error
rate, error > 1/2) and "mse". Recompute it from the file with
    u = load_uand(path); and_mlp.error_table(u["model"], u["inputs"], u["pairs"])  (row "all")
    d = load_deep(path); and_mlp.error_summary((d["forward"](d["inputs"]) - d["values"])[1:].abs())
(the deep file's entry is over layers 1..L, from the factored forward pass, equal to the dense one
to float32 rounding).
``write_examples`` writes the book's three example networks (sizes in ``EXAMPLES``) and reads them back.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from toysup.cis import and_mlp, deep_circuits, uand
from toysup.paths import OUTPUTS

# The book's exported networks (chapter 14): U-AND with 20x fewer neurons than ANDs, basis-aligned
# and with inputs in superposition (d0 < m), and the error-corrected deep network.
EXAMPLES = {"n_features": 128, "n_active": 2, "n_shared": 32, "uand_width": 400,
            "superposed_width": 2000, "superposed_input": 64,
            "deep_features": 256, "d_or": 1200, "d_and": 2400, "deep_shared": 32, "depth": 6,
            "margin": 0.4, "gate_prob": 0.1}


def default_dir() -> Path:
    """The repository's ``outputs/cis_export`` folder (git-ignored)."""
    return OUTPUTS / "cis_export"


def _target(path: str | Path | None, name: str) -> Path:
    path = default_dir() / name if path is None else Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"path must end in .safetensors, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def export_uand(model: and_mlp.MLP, x_test: Tensor, *, metadata: dict | None = None,
                path: str | Path | None = None) -> Path:
    """Write a one-layer AND network, its read-offs and a labelled test set; returns the path."""
    m = x_test.shape[1]
    pairs = and_mlp.all_pairs(m)
    if model.W_out.shape[0] != pairs.shape[0]:
        raise ValueError(f"model must have P = {pairs.shape[0]} outputs for m = {m}, "
                         f"got {model.W_out.shape[0]}")
    tensors = {"W_in": model.W_in, "b_in": model.b_in, "readoff": model.W_out,
               "b_out": model.b_out, "pairs": pairs,
               "test.inputs": x_test.to(torch.uint8),
               "test.targets": and_mlp.and_targets(x_test, pairs).to(torch.uint8)}
    if model.embedding is not None:
        tensors["embedding"] = model.embedding
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    error = and_mlp.error_table(model, x_test, pairs).set_index("case").loc["all"].to_dict()
    out = _target(path, "uand.safetensors")
    save_file(tensors, str(out), metadata={"kind": "uand",
                                           "json": json.dumps({**(metadata or {}), "error": error})})
    return out


def _read(path: str | Path | None, kind: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and header of ``<kind>.safetensors`` (default folder) or ``path``, checking its kind."""
    path = Path(path) if path is not None else default_dir() / f"{kind}.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("kind") != kind:
        raise ValueError(f"path {str(path)!r} holds kind {meta.get('kind')!r}, not {kind!r}")
    return tensors, meta


def load_uand(path: str | Path | None = None) -> dict:
    """Read ``export_uand``'s file: a dict with ``model`` (and_mlp.MLP, with its embedding if the
    file has one; it takes the boolean inputs), ``pairs``, ``inputs``, ``targets`` (float32) and
    ``metadata`` (its "error" entry: see the module docstring for how to recompute it)."""
    t, meta = _read(path, "uand")
    model = and_mlp.MLP(t["W_in"], t["b_in"], t["readoff"], t["b_out"], t.get("embedding"))
    return {"model": model, "pairs": t["pairs"], "inputs": t["test.inputs"].float(),
            "targets": t["test.targets"].float(), "metadata": json.loads(meta["json"])}


def export_deep(circuit: deep_circuits.Circuit, config: deep_circuits.DeepConfig, x_test: Tensor,
                *, network: str = "ec", net_seed: int = 0, metadata: dict | None = None,
                path: str | Path | None = None) -> Path:
    """Write the deep network (factored, exact), its read-offs, the circuit and a test set."""
    _, bs, Rs = deep_circuits.explicit_mlp(circuit, config, network=network, net_seed=net_seed,
                                           weights=False)
    truth = deep_circuits.evaluate_circuit(circuit, x_test)
    values, _ = deep_circuits.run_network(circuit, config, x_test, network=network, net_seed=net_seed)
    tensors = {"circuit.perm": circuit.perm, "circuit.partner": circuit.partner,
               "circuit.gate_type": circuit.gate_type.long(),
               "test.inputs": x_test.to(torch.uint8), "test.values": truth.to(torch.uint8)}
    for l in range(1, circuit.depth + 1):
        B_or, B_and = deep_circuits.connectivity(config, circuit.n_features, l, net_seed)
        tensors[f"layers.{l}.connectivity"] = torch.cat([B_or, B_and]).to(torch.uint8)
        tensors[f"layers.{l}.bias"] = bs[l - 1].float()
        tensors[f"layers.{l}.readoff"] = Rs[l - 1].float()
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    info = {"network": network, "net_seed": net_seed, "depth": circuit.depth,
            "n_features": circuit.n_features, "d_or": config.d_or, "d_and": config.d_and,
            "n_shared": config.n_shared, "margin": config.margin, **(metadata or {}),
            "error": and_mlp.error_summary((values - truth.float())[1:].abs())}
    out = _target(path, "deep.safetensors")
    save_file(tensors, str(out), metadata={"kind": "deep", "json": json.dumps(info)})
    return out


def load_deep(path: str | Path | None = None) -> dict:
    """Read ``export_deep``'s file. Returns a dict with
    ``weight``: a function l -> dense W^l (hidden, in) float32, built on demand (l = 1..L; each is
    hidden x hidden, so they are not all held at once), ``biases`` and ``readoffs`` (lists over l),
    ``connectivity`` (C^l), ``forward``: x (T, m) -> gate read-offs (L+1, T, m) through the dense
    layers, ``circuit`` (deep_circuits.Circuit), ``inputs`` (T, m), ``values`` (L+1, T, m) float32
    and ``metadata``."""
    t, meta = _read(path, "deep")
    info = json.loads(meta["json"])
    L, ec = info["depth"], info["network"] == "ec"
    conn = [t[f"layers.{l}.connectivity"].float() for l in range(1, L + 1)]
    readoffs = [t[f"layers.{l}.readoff"] for l in range(1, L + 1)]
    biases = [t[f"layers.{l}.bias"] for l in range(1, L + 1)]

    def weight(l: int) -> Tensor:
        if not 1 <= l <= L:
            raise ValueError(f"l must be in [1, {L}], got {l!r}")
        W = conn[0] if l == 1 else conn[l - 1] @ readoffs[l - 2]
        return torch.cat([W, W]) if ec else W

    def forward(x: Tensor) -> Tensor:
        h, out = x.float(), [x.float()]
        for l in range(1, L + 1):
            h = torch.relu(h @ weight(l).T + biases[l - 1])
            out.append(h @ readoffs[l - 1].T)
        return torch.stack(out)

    circuit = deep_circuits.Circuit(t["circuit.perm"], t["circuit.partner"], t["circuit.gate_type"])
    return {"weight": weight, "forward": forward, "biases": biases, "readoffs": readoffs,
            "connectivity": conn, "circuit": circuit, "inputs": t["test.inputs"].float(),
            "values": t["test.values"].float(), "metadata": info}


@dataclass(frozen=True)
class Examples:
    """What ``write_examples`` wrote and read back, keyed "uand", "uand_superposed", "deep": paths,
    the loaded metadata, the loaded networks' absolute errors on their test sets ((T, P) for U-AND,
    (L, T, m) over layers 1..L for deep) and the largest difference between loaded and original
    outputs over all three."""

    paths: dict[str, Path]
    metadata: dict[str, dict]
    errors: dict[str, Tensor]
    roundtrip: float


def write_examples(n_inputs: int, *, seed: int, folder: str | Path | None = None) -> Examples:
    """Export the book's three networks (``EXAMPLES``) with n_inputs test inputs each, load them back
    and score them. Both U-AND networks and all test sets are drawn from seed + 2000, the circuit
    and the deep network's connectivity from seed."""
    e = EXAMPLES
    folder = default_dir() if folder is None else Path(folder)
    gen = torch.Generator().manual_seed(seed + 2000)
    shallow = {"uand": and_mlp.construct("sparse", e["n_features"], e["uand_width"],
                                         n_shared=e["n_shared"], generator=gen),
               "uand_superposed": and_mlp.construct("superposed", e["n_features"], e["superposed_width"],
                                                    n_shared=e["n_shared"], d_input=e["superposed_input"],
                                                    generator=gen)}
    uand_x = uand.sample_exactly_s(n_inputs, e["n_features"], e["n_active"], gen)
    paths, loaded, roundtrip = {}, {}, 0.0
    for name, model in shallow.items():
        paths[name] = export_uand(model, uand_x, path=folder / f"{name}.safetensors", metadata={
            "construction": name, "n_shared": e["n_shared"], "n_active": e["n_active"], "seed": seed + 2000})
        loaded[name] = load_uand(paths[name])
        roundtrip = max(roundtrip, (loaded[name]["model"](uand_x) - model(uand_x)).abs().max().item())
    circuit = deep_circuits.random_circuit(e["deep_features"], e["depth"], gate_prob=e["gate_prob"],
                                           generator=torch.Generator().manual_seed(seed))
    config = deep_circuits.DeepConfig(d_or=e["d_or"], d_and=e["d_and"], n_shared=e["deep_shared"],
                                      margin=e["margin"])
    deep_x, _ = deep_circuits.sparse_inputs(circuit, n_inputs, e["n_active"], generator=gen)
    paths["deep"] = export_deep(circuit, config, deep_x, net_seed=seed, path=folder / "deep.safetensors",
                                metadata={"n_active": e["n_active"], "gate_prob": e["gate_prob"]})
    loaded["deep"] = load_deep(paths["deep"])
    factored, _ = deep_circuits.run_network(circuit, config, deep_x, net_seed=seed)
    dense = loaded["deep"]["forward"](loaded["deep"]["inputs"])
    roundtrip = max(roundtrip, (dense[1:] - factored[1:]).abs().max().item())
    errors = {name: (loaded[name]["model"](loaded[name]["inputs"]) - loaded[name]["targets"]).abs()
              for name in shallow}
    errors["deep"] = (dense - loaded["deep"]["values"]).abs()[1:]
    return Examples(paths, {k: v["metadata"] for k, v in loaded.items()}, errors, roundtrip)
