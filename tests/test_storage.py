"""toysup.storage: a write is published whole or not at all, under a unique temporary name; a lock
makes processes producing the same file take turns, and clears what a killed writer left."""
import subprocess
import sys
import time

import pytest

from toysup import storage


def test_a_write_publishes_the_whole_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "state.json"
    storage.write_text(target, "{}")
    storage.write_text(target, '{"a": 1}')
    assert target.read_text() == '{"a": 1}'
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_a_failing_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "record.json"
    target.write_text("old")

    def half(file):
        file.write(b"ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        storage.atomic_write(target, half)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_a_second_holder_waits_and_says_so(tmp_path, capsys):
    target = tmp_path / "entry.pt"
    hold = (f"import time\nfrom pathlib import Path\nfrom toysup import storage\n"
            f"with storage.locked(Path({str(target)!r})):\n"
            f"    print('held', flush=True)\n    time.sleep(1.5)")
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    tic = time.perf_counter()
    with storage.locked(target, waiting="waiting for the other holder"):
        waited = time.perf_counter() - tic
    assert holder.wait() == 0
    assert waited > 0.5 and "waiting for the other holder" in capsys.readouterr().out


def test_the_lock_clears_temporaries_a_killed_writer_left(tmp_path):
    target = tmp_path / "fit-abc.pt"
    (tmp_path / ".fit-abc.pt.0123456789ab.tmp").write_bytes(b"half")
    (tmp_path / ".other.pt.0123456789ab.tmp").write_bytes(b"someone else's")
    with storage.locked(target):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fit-abc.pt.lock", ".other.pt.0123456789ab.tmp"]


def test_try_locked_holds_only_a_free_lock(tmp_path):
    """Fails if try_locked waits, or claims a lock that another holder has."""
    target = tmp_path / "entry.pt"
    with storage.try_locked(target) as first:
        with storage.try_locked(target) as second:   # a second open file: another holder
            assert first and not second
    with storage.try_locked(target) as again:
        assert again
