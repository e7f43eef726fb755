"""Constructed networks that compute in superposition, exported for interpretability research.

Two safetensors files (https://huggingface.co/docs/safetensors; readable from PyTorch, NumPy, JAX,
Rust), written under the repository's git-ignored ``outputs/`` folder:

``uand.safetensors`` -- one hidden ReLU layer computing all m(m-1)/2 pairwise ANDs (sparse U-AND,
spec §2; ``toysup.cis.and_mlp.construct``):
    W_in (d, m) float32 in {0, 1}, b_in (d,), readoff (P, d), b_out (P,), pairs (P, 2) int64,
    test.inputs (T, m) uint8, test.targets (T, P) uint8.
    y_hat = readoff @ ReLU(W_in @ x + b_in) + b_out approximates targets (epsilon-linear read-off).

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
Metadata (config, seeds, network) is in the file header, as JSON strings.
``write_examples`` writes the book's two example networks (sizes in ``EXAMPLES``) and reads them back.
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

# The book's exported networks (chapter 14): sparse U-AND and an error-corrected deep network.
EXAMPLES = {"n_features": 64, "n_active": 2, "n_shared": 32, "uand_width": 2000, "d_or": 1200,
            "d_and": 2400, "depth": 6, "margin": 0.4, "gate_prob": 0.1}


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
    m = model.W_in.shape[1]
    pairs = and_mlp.all_pairs(m)
    if model.W_out.shape[0] != pairs.shape[0]:
        raise ValueError(f"model must have P = {pairs.shape[0]} outputs for m = {m}, "
                         f"got {model.W_out.shape[0]}")
    tensors = {"W_in": model.W_in, "b_in": model.b_in, "readoff": model.W_out,
               "b_out": model.b_out, "pairs": pairs,
               "test.inputs": x_test.to(torch.uint8),
               "test.targets": and_mlp.and_targets(x_test, pairs).to(torch.uint8)}
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    out = _target(path, "uand.safetensors")
    save_file(tensors, str(out), metadata={"kind": "uand", "json": json.dumps(metadata or {})})
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
    """Read ``export_uand``'s file: a dict with ``model`` (and_mlp.MLP), ``pairs``, ``inputs``,
    ``targets`` (float32) and ``metadata``."""
    t, meta = _read(path, "uand")
    model = and_mlp.MLP(t["W_in"], t["b_in"], t["readoff"], t["b_out"])
    return {"model": model, "pairs": t["pairs"], "inputs": t["test.inputs"].float(),
            "targets": t["test.targets"].float(), "metadata": json.loads(meta["json"])}


def export_deep(circuit: deep_circuits.Circuit, config: deep_circuits.DeepConfig, x_test: Tensor,
                *, network: str = "ec", net_seed: int = 0, metadata: dict | None = None,
                path: str | Path | None = None) -> Path:
    """Write the deep network (factored, exact), its read-offs, the circuit and a test set."""
    _, bs, Rs = deep_circuits.explicit_mlp(circuit, config, network=network, net_seed=net_seed,
                                           weights=False)
    truth = deep_circuits.evaluate_circuit(circuit, x_test)
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
            "n_shared": config.n_shared, "margin": config.margin, **(metadata or {})}
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
    """What ``write_examples`` wrote and read back: paths, the largest difference between loaded and
    original outputs, and the loaded networks' absolute errors on their test sets."""

    uand_path: Path
    deep_path: Path
    roundtrip: float          # max |loaded - original| over both networks' outputs
    uand_error: Tensor        # (T, P) |y_hat - y| of the loaded U-AND network
    deep_error: Tensor        # (L, T, m) |v_hat - g| of the loaded deep network, layers 1..L


def write_examples(n_inputs: int, *, seed: int, folder: str | Path | None = None) -> Examples:
    """Export the book's two networks (``EXAMPLES``) with n_inputs test inputs each, load them back
    and score them. The U-AND network and both test sets are drawn from seed + 2000, the circuit
    and the deep network's connectivity from seed."""
    e = EXAMPLES
    folder = default_dir() if folder is None else Path(folder)
    gen = torch.Generator().manual_seed(seed + 2000)
    uand_model = and_mlp.construct("sparse", e["n_features"], e["uand_width"],
                                   n_shared=e["n_shared"], generator=gen)
    uand_x = uand.sample_exactly_s(n_inputs, e["n_features"], e["n_active"], gen)
    uand_path = export_uand(uand_model, uand_x, path=folder / "uand.safetensors", metadata={
        "construction": "sparse U-AND", "n_shared": e["n_shared"], "n_active": e["n_active"],
        "seed": seed + 2000})
    circuit = deep_circuits.random_circuit(e["n_features"], e["depth"], gate_prob=e["gate_prob"],
                                           generator=torch.Generator().manual_seed(seed))
    config = deep_circuits.DeepConfig(d_or=e["d_or"], d_and=e["d_and"], n_shared=e["n_shared"],
                                      margin=e["margin"])
    deep_x, _ = deep_circuits.sparse_inputs(circuit, n_inputs, e["n_active"], generator=gen)
    deep_path = export_deep(circuit, config, deep_x, net_seed=seed, path=folder / "deep.safetensors",
                            metadata={"n_active": e["n_active"], "gate_prob": e["gate_prob"]})
    u, d = load_uand(uand_path), load_deep(deep_path)
    factored, _ = deep_circuits.run_network(circuit, config, deep_x, net_seed=seed)
    roundtrip = max((u["model"](u["inputs"]) - uand_model(uand_x)).abs().max().item(),
                    (d["forward"](d["inputs"])[1:] - factored[1:]).abs().max().item())
    return Examples(uand_path, deep_path, roundtrip,
                    (u["model"](u["inputs"]) - u["targets"]).abs(),
                    (d["forward"](d["inputs"]) - d["values"]).abs()[1:])
