import torch

from toysup import cache, model, train

CFG = model.AutoencoderConfig(8, 2, 2)
TRAIN = train.TrainConfig(n_steps=5, batch=16)


def test_miss_then_hit_returns_the_same_model(tmp_path, capsys):
    first = cache.cached_fit(CFG, [0.1, 0.2], TRAIN, seed=3, root=tmp_path, progress=False)
    assert "cache miss" in capsys.readouterr().out
    second = cache.cached_fit(CFG, [0.1, 0.2], TRAIN, seed=3, root=tmp_path, progress=False)
    out = capsys.readouterr().out
    assert "cache hit" in out and str(tmp_path) in out
    torch.testing.assert_close(second.params.W_eff(), first.params.W_eff())
    torch.testing.assert_close(second.params.b, first.params.b)
    torch.testing.assert_close(second.history, first.history)
    assert second.seeds == first.seeds
    assert len(list(tmp_path.glob("fit-*.pt"))) == 1


def test_cached_result_equals_a_direct_fit(tmp_path):
    cached = cache.cached_fit(CFG, 0.1, TRAIN, seed=1, root=tmp_path, progress=False)
    direct = train.fit(CFG, 0.1, TRAIN, seed=1, progress=False)
    torch.testing.assert_close(cached.params.W_eff(), direct.params.W_eff())


def test_any_change_of_configuration_is_a_new_entry(tmp_path):
    cache.cached_fit(CFG, 0.1, TRAIN, seed=0, root=tmp_path, progress=False)
    cache.cached_fit(CFG, 0.1, TRAIN, seed=1, root=tmp_path, progress=False)
    cache.cached_fit(CFG, 0.2, TRAIN, seed=0, root=tmp_path, progress=False)
    cache.cached_fit(CFG, 0.1, train.TrainConfig(n_steps=6, batch=16), seed=0, root=tmp_path,
                     progress=False)
    assert len(list(tmp_path.glob("fit-*.pt"))) == 4


def test_a_source_change_invalidates_the_entry(tmp_path, monkeypatch, capsys):
    cache.cached_fit(CFG, 0.1, TRAIN, seed=0, root=tmp_path, progress=False)
    monkeypatch.setattr(cache, "source_digest", lambda package_dir=None: "edited")
    cache.cached_fit(CFG, 0.1, TRAIN, seed=0, root=tmp_path, progress=False)
    assert capsys.readouterr().out.count("cache miss") == 2
    assert len(list(tmp_path.glob("fit-*.pt"))) == 2


def test_source_digest_follows_file_contents(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    before = cache.source_digest(tmp_path)
    (tmp_path / "a.py").write_text("x = 2\n")
    assert cache.source_digest(tmp_path) != before
    assert len(before) == 64


def test_default_root_is_inside_the_repository_not_the_working_directory():
    assert cache.DEFAULT_ROOT == cache.PACKAGE_DIR.parent / "outputs" / "cache"
    assert cache.DEFAULT_ROOT.is_absolute()
