"""Constructed networks that compute in superposition, exported for interpretability research.

Two safetensors files (https://huggingface.co/docs/safetensors; readable from PyTorch, NumPy, JAX,
Rust), written under the repository's git-ignored ``outputs/`` folder:

``uand.safetensors`` -- one hidden ReLU layer computing all m(m-1)/2 pairwise ANDs (sparse U-AND,
spec §2; ``toysup.and_mlp.construct``):
    W_in (d, m) float32 in {0, 1}, b_in (d,), readoff (P, d), b_out (P,), pairs (P, 2) int64,
    test.inputs (T, m) uint8, test.targets (T, P) uint8.
    y_hat = readoff @ ReLU(W_in @ x + b_in) + b_out approximates targets (epsilon-linear read-off).

``deep.safetensors`` -- a depth-L ReLU MLP emulating a random sparse boolean circuit with error
correction (spec §5; ``toysup.deep_circuits``). Stored in exact factored form, because the dense
layers are (hidden x hidden):
    layers.{l}.connectivity (D, m) uint8 = [B_or; B_and],  layers.{l}.bias (hidden,),
    layers.{l}.readoff (m, hidden) float32 = R^l,   for l = 1..L;
    circuit.perm / circuit.partner / circuit.gate_type (L, m) int64 (0 COPY, 1 AND, 2 OR);
    test.inputs (T, m) uint8, test.values (L+1, T, m) uint8 (ground-truth gate values per layer).
    Dense weights: W^1 = [C^1; C^1] and W^l = [C^l; C^l] R^{l-1} (l >= 2) for "ec" (for the naive
    variants W^l = C^l R^{l-1}); h^l = ReLU(W^l h^{l-1} + b^l), gate values v_hat^l = R^l h^l.
``load_uand`` / ``load_deep`` return these as tensors; ``load_deep`` also builds each dense W^l on
demand and runs the dense network.
Metadata (config, seeds, variant) is in the file header, as JSON strings.
"""
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from toysup import and_mlp, deep_circuits


def default_dir() -> Path:
    """The repository's ``outputs/cis_export`` folder (git-ignored)."""
    return Path(__file__).resolve().parents[1] / "outputs" / "cis_export"


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


def load_uand(path: str | Path | None = None) -> dict:
    """Read ``export_uand``'s file: a dict with ``model`` (and_mlp.MLP), ``pairs``, ``inputs``,
    ``targets`` (float32) and ``metadata``."""
    path = Path(path) if path is not None else default_dir() / "uand.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        t = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("kind") != "uand":
        raise ValueError(f"path {str(path)!r} holds kind {meta.get('kind')!r}, not 'uand'")
    model = and_mlp.MLP(t["W_in"], t["b_in"], t["readoff"], t["b_out"])
    return {"model": model, "pairs": t["pairs"], "inputs": t["test.inputs"].float(),
            "targets": t["test.targets"].float(), "metadata": json.loads(meta["json"])}


def export_deep(circuit: deep_circuits.Circuit, config: deep_circuits.DeepConfig, x_test: Tensor,
                *, variant: str = "ec", net_seed: int = 0, metadata: dict | None = None,
                path: str | Path | None = None) -> Path:
    """Write the deep network (factored, exact), its read-offs, the circuit and a test set."""
    _, bs, Rs = deep_circuits.explicit_mlp(circuit, config, variant=variant, net_seed=net_seed,
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
    info = {"variant": variant, "net_seed": net_seed, "depth": circuit.depth,
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
    path = Path(path) if path is not None else default_dir() / "deep.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        t = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("kind") != "deep":
        raise ValueError(f"path {str(path)!r} holds kind {meta.get('kind')!r}, not 'deep'")
    info = json.loads(meta["json"])
    L, ec = info["depth"], info["variant"] == "ec"
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
