"""toysup.paths.source_digest: every reuse key covers the whole package, subpackages included."""
import shutil

from toysup import paths


def test_digest_changes_with_any_source_file_in_any_subpackage(tmp_path):
    copy = tmp_path / "toysup"
    shutil.copytree(paths.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = paths.source_digest(copy)
    assert before == paths.source_digest(paths.PACKAGE_DIR)
    for module in ("persian_rug/theory.py", "cis/uand.py", "book/scorecard.py", "fits.py"):
        target = copy / module
        text = target.read_text()
        target.write_text(text + "\n# changed\n")
        assert paths.source_digest(copy) != before, module
        target.write_text(text)
    assert paths.source_digest(copy) == before
    (copy / "cis" / "extra.py").write_text("")
    assert paths.source_digest(copy) != before


def test_output_folders_are_inside_the_repository():
    assert paths.OUTPUTS.parent == paths.BUILD.parent == paths.REPO_ROOT
    assert (paths.REPO_ROOT / "pyproject.toml").exists()
