"""Trained models cached on disk, keyed by everything that determines them.

``cached_fit`` returns exactly what ``train.fit`` returns. The key is the SHA-256 of a JSON record of
the model and training configurations, the feature probabilities, the seed(s), the device type, the
Python, numpy (seeds come from ``SeedSequence``) and torch versions and the SHA-256 of the sources
that determine a trained model (``MODEL_SOURCES``: ``toysup/persian_rug/`` and ``toysup/checks.py``;
an edit of the plotting or book code retrains nothing): change any of them and the key changes, so a
stale entry is never reused (it simply stops being found). Entries are plain tensors saved with
``torch.save`` (loaded with ``weights_only=True``) under ``outputs/cache/`` of the repository, a path
resolved from this file's location, never from the working directory.

Concurrent runs are safe: a fit holds its entry's lock (``toysup.storage.locked``) from the lookup to
the save, so two processes missing the same key train it once, and an entry is published atomically
(``toysup.storage.atomic_write``), so a killed run leaves no half-written one. ``cached_fits`` fits
a list of models and shares it with other processes fitting the same list: each takes the entries
no other holds, largest first, and waits for the others' at the end (the book runner starts a
second kernel for a chapter that trains many models, ``toysup.book.reproduce``). An entry that
cannot be read back, or whose record is not the fit's, is named in one printed line, discarded and
retrained.

Each call prints one short line (``cache: reused outputs/cache/fit-….pt``); inside
``with summarised():`` it prints nothing, and the block ends with one line per cache folder
(``cache: 8 models reused, 2 trained (outputs/cache)``).

Layout of one entry ``<root>/fit-<key[:24]>.pt``: {"encoder", "decoder", "b", "extra", "history",
"seeds", "record"}: decoder omitted for tied models, "extra" the activation's own tensors by name
(``AutoencoderParams.extra``, e.g. JumpReLU's "threshold"), "record" the fit record's JSON.
"""
import hashlib
import json
import os
import pickle
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor

from toysup import checks, storage
from toysup.paths import OUTPUTS, PACKAGE_DIR, shown, source_digest, versions
from toysup.persian_rug.model import AutoencoderConfig, AutoencoderParams
from toysup.persian_rug.train import TrainConfig, TrainResult, fit

DEFAULT_ROOT = OUTPUTS / "cache"
MODEL_SOURCES = ("persian_rug", "checks.py")   # relative to the package: what a trained model depends on
MODEL_PACKAGES = ("numpy", "torch")            # whose versions (with Python's) a trained model depends on
_TALLIES: list[dict[Path, Counter[str]]] = []  # the open ``summarised`` blocks, innermost last
FitSpec = tuple[AutoencoderConfig, float | Sequence[float] | Tensor, TrainConfig]   # one fit's arguments


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
        "versions": versions(MODEL_PACKAGES),
        "source": source_digest(package_dir, MODEL_SOURCES),
    }


def cache_key(record: dict) -> str:
    """SHA-256 of the canonical JSON of a fit record."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


@contextmanager
def summarised() -> Iterator[None]:
    """Within the block ``cached_fit`` prints nothing per model; the block ends with one line per
    cache folder used: ``cache: 8 models reused, 2 trained (outputs/cache)``."""
    tally: dict[Path, Counter[str]] = {}
    _TALLIES.append(tally)
    try:
        yield
    finally:
        _TALLIES.remove(tally)
    for folder, counts in tally.items():
        reused, trained = counts["reused"], counts["trained"]
        print(f"cache: {reused} model{'' if reused == 1 else 's'} reused, {trained} trained "
              f"({shown(folder)})")


def _report(outcome: str, path: Path) -> None:
    """Count a "reused" or "trained" model in the innermost ``summarised`` block, else print it."""
    if _TALLIES:
        _TALLIES[-1].setdefault(path.parent, Counter())[outcome] += 1
    else:
        print(f"cache: {outcome} {shown(path)}")


def _read(path: Path, record_json: str, model_cfg: AutoencoderConfig) -> dict | None:
    """The entry at ``path`` (tensors on the CPU), None if there is none. One that cannot be read
    back, lacks a tensor or was stored for another record is named, deleted and None."""
    if not path.exists():
        return None
    needed = {"encoder", "b", "extra", "history", "seeds", "record"}
    if not model_cfg.tied:
        needed.add("decoder")
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        missing = needed - set(stored) if isinstance(stored, dict) else needed
        if missing:
            raise ValueError(f"it lacks {', '.join(sorted(missing))}")
        if stored["record"] != record_json:
            raise ValueError("its record is not this fit's")
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        reason = (str(err).strip() or type(err).__name__).splitlines()[0].split(". ")[0]
        print(f"cache: {shown(path)} is unreadable ({reason}); discarded, retraining", flush=True)
        path.unlink(missing_ok=True)
        return None
    return stored


def cached_fit(model_cfg: AutoencoderConfig, feature_prob: float | Sequence[float] | Tensor,
               train_cfg: TrainConfig = TrainConfig(), *, seed: int | Sequence[int] = 0,
               device: str | torch.device = "cpu", root: Path | str | None = None,
               progress: bool = True) -> TrainResult:
    """``train.fit(model_cfg, feature_prob, train_cfg, seed=seed, device=device)``, from disk if cached.

    root: cache folder (default ``<repo>/outputs/cache``). Prints one line: "reused" or "trained"
    and the entry's path (relative to the repository), or nothing inside ``summarised()``.
    """
    dev = checks.device(device)
    path, record_json = _entry(model_cfg, feature_prob, train_cfg, seed=seed, device=dev, root=root)
    with storage.locked(path, waiting=f"cache: waiting for another process training {shown(path)}"):
        return _reuse_or_fit(path, record_json, model_cfg, feature_prob, train_cfg, seed=seed,
                             device=dev, progress=progress)


def cached_fits(fits: Sequence[FitSpec], *, seed: int = 0, device: str | torch.device = "cpu",
                root: Path | str | None = None, progress: bool = True) -> list[TrainResult | None]:
    """``cached_fit`` of every (model_cfg, feature_prob, train_cfg) in ``fits``, in that order, the
    work shared with any other process fitting the same entries at the same time.

    The fits are taken largest first (``fit_cost``); one whose entry another process holds is
    passed over and, once the rest are done, waited for and reused. So two processes given the same
    list split it, each model trained once, whichever trains it (a fit depends only on its
    configuration and seed). In a training helper (``storage.HELPER_ENV`` set to 1: the book runner's
    second kernel for a chapter, ``toysup.book.reproduce``) the passed-over entries are left to
    the process training them and are None in the result.
    """
    dev = checks.device(device)
    entries = [_entry(cfg, prob, train_cfg, seed=seed, device=dev, root=root)
               for cfg, prob, train_cfg in fits]
    results: list[TrainResult | None] = [None] * len(fits)
    passed = []
    for i in sorted(range(len(fits)), key=lambda j: -fit_cost(*fits[j])):
        with storage.try_locked(entries[i][0]) as held:
            if held:
                results[i] = _reuse_or_fit(*entries[i], *fits[i], seed=seed, device=dev,
                                           progress=progress)
            else:
                passed.append(i)
    if os.environ.get(storage.HELPER_ENV) == "1":
        return results
    for i in passed:
        results[i] = cached_fit(*fits[i], seed=seed, device=dev, root=root, progress=progress)
    return results


def fit_cost(model_cfg: AutoencoderConfig, feature_prob: float | Sequence[float] | Tensor,
             train_cfg: TrainConfig) -> int:
    """A fit's work in units of one multiply-add: steps · batch · k · n · m (its dense products)."""
    return (train_cfg.n_steps * train_cfg.batch * model_cfg.n_instances * model_cfg.n_features
            * model_cfg.d_hidden)


def _entry(model_cfg: AutoencoderConfig, feature_prob: float | Sequence[float] | Tensor,
           train_cfg: TrainConfig, *, seed: int | Sequence[int], device: torch.device,
           root: Path | str | None) -> tuple[Path, str]:
    """The entry's path and the fit record's canonical JSON."""
    folder = Path(root) if root is not None else DEFAULT_ROOT
    record = fit_record(model_cfg, feature_prob, train_cfg, seed=seed, device=device)
    return folder / f"fit-{cache_key(record)[:24]}.pt", json.dumps(record, sort_keys=True)


def _reuse_or_fit(path: Path, record_json: str, model_cfg: AutoencoderConfig,
                  feature_prob: float | Sequence[float] | Tensor, train_cfg: TrainConfig, *,
                  seed: int | Sequence[int], device: torch.device, progress: bool) -> TrainResult:
    """The entry at ``path`` if it holds this fit, else the fit, trained and saved; the caller
    holds the entry's lock."""
    stored = _read(path, record_json, model_cfg)
    if stored is not None:
        enc = stored["encoder"].to(device)
        dec = enc if model_cfg.tied else stored["decoder"].to(device)
        extra = {name: value.to(device) for name, value in stored["extra"].items()}
        params = AutoencoderParams(model_cfg, enc, dec, stored["b"].to(device), extra)
        _report("reused", path)
        return TrainResult(params=params, history=stored["history"],
                           seeds=[int(s) for s in stored["seeds"].tolist()],
                           plateau_steps=stored.get("plateau_steps"))
    result = fit(model_cfg, feature_prob, train_cfg, seed=seed, device=device, progress=progress)
    params = result.params
    payload = {"encoder": params.encoder.detach().cpu(), "b": params.b.detach().cpu(),
               "extra": {name: value.detach().cpu() for name, value in params.extra.items()},
               "history": result.history.cpu(), "seeds": torch.tensor(result.seeds),
               "record": record_json}
    if not model_cfg.tied:
        payload["decoder"] = params.decoder.detach().cpu()
    if result.plateau_steps is not None:
        payload["plateau_steps"] = result.plateau_steps
    storage.atomic_write(path, lambda file: torch.save(payload, file))
    _report("trained", path)
    return result
