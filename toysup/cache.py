"""Trained models cached on disk, keyed by everything that determines them.

``cached_fit`` returns exactly what ``train.fit`` returns. The key is the SHA-256 of a JSON record of
the model and training configurations, the feature probabilities, the seed(s), the device type, the
torch version and the SHA-256 of the contents of every ``toysup/*.py`` file: change any of them and
the key changes, so a stale entry is never reused (it simply stops being found). Entries are plain
tensors saved with ``torch.save`` (loaded with ``weights_only=True``) under ``outputs/cache/`` of the
repository, a path resolved from this file's location, never from the working directory.

Layout of one entry ``<root>/fit-<key[:24]>.pt``: {"encoder", "decoder", "b", "history", "seeds"}
(decoder omitted for tied models) plus the JSON record under "record" for inspection.
"""
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor

from toysup import checks
from toysup.model import AutoencoderConfig, AutoencoderParams
from toysup.train import TrainConfig, TrainResult, fit

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_ROOT = PACKAGE_DIR.parent / "outputs" / "cache"


def source_digest(package_dir: Path = PACKAGE_DIR) -> str:
    """SHA-256 over the names and contents of every ``*.py`` file of the package, in name order."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def fit_record(model_cfg: AutoencoderConfig, feature_prob: float | Sequence[float] | Tensor,
               train_cfg: TrainConfig, *, seed: int | Sequence[int],
               device: str | torch.device, package_dir: Path = PACKAGE_DIR) -> dict:
    """The JSON-serialisable record that identifies one ``train.fit`` call."""
    p = checks.probabilities("feature_prob", feature_prob)
    return {
        "model": asdict(model_cfg),
        "feature_prob": [float(v) for v in p.tolist()],
        "train": asdict(train_cfg),
        "seed": seed if isinstance(seed, int) else [int(s) for s in seed],
        "device": checks.device(device).type,
        "torch": torch.__version__,
        "source": source_digest(package_dir),
    }


def cache_key(record: dict) -> str:
    """SHA-256 of the canonical JSON of a fit record."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def cached_fit(model_cfg: AutoencoderConfig, feature_prob: float | Sequence[float] | Tensor,
               train_cfg: TrainConfig = TrainConfig(), *, seed: int | Sequence[int] = 0,
               device: str | torch.device = "cpu", root: Path | str | None = None,
               progress: bool = True) -> TrainResult:
    """``train.fit(model_cfg, feature_prob, train_cfg, seed=seed, device=device)``, from disk if cached.

    root: cache folder (default ``<repo>/outputs/cache``). A hit prints one line naming the file; a
    miss trains, saves atomically and prints where it saved.
    """
    dev = checks.device(device)
    folder = Path(root) if root is not None else DEFAULT_ROOT
    record = fit_record(model_cfg, feature_prob, train_cfg, seed=seed, device=dev)
    path = folder / f"fit-{cache_key(record)[:24]}.pt"
    if path.exists():
        stored = torch.load(path, map_location=dev, weights_only=True)
        enc = stored["encoder"]
        dec = enc if model_cfg.tied else stored["decoder"]
        params = AutoencoderParams(model_cfg, enc, dec, stored["b"])
        print(f"cache hit: {path}")
        return TrainResult(params=params, history=stored["history"],
                           seeds=[int(s) for s in stored["seeds"].tolist()])
    result = fit(model_cfg, feature_prob, train_cfg, seed=seed, device=dev, progress=progress)
    params = result.params
    payload = {"encoder": params.encoder.detach().cpu(), "b": params.b.detach().cpu(),
               "history": result.history.cpu(), "seeds": torch.tensor(result.seeds),
               "record": json.dumps(record, sort_keys=True)}
    if not model_cfg.tied:
        payload["decoder"] = params.decoder.detach().cpu()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    print(f"cache miss: trained and saved {path}")
    return result
