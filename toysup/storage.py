"""Files written so that no reader ever sees half of one and two writers never clash.

``atomic_write`` writes to a temporary file of a unique name beside the target
(``.<name>.<random>.tmp``), flushes and fsyncs it, then renames it over the target with
``os.replace`` (atomic on POSIX): whenever the writer dies, the target is the old file or the new
one, never a mix. ``locked`` holds an exclusive ``fcntl.flock`` on ``.<name>.lock`` beside a file, so
that processes producing the same file take turns (``try_locked``: only if no other holds it now); the kernel releases the lock when its holder
exits or is killed, so a crash never leaves it stuck.
"""
import fcntl
import glob
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

# Set to "1" in a helper process (the book runner's training helper, toysup.book.reproduce): a list
# of entries shared with other processes (persian_rug.cache.cached_fits) is worked through for the
# entries no other process holds, and the held ones are left to their holders, never waited for.
HELPER_ENV = "TOYSUP_TRAINING_HELPER"


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Publish ``path`` with what ``write(file)`` writes to the binary file it is given, all or
    nothing. Creates the folder; an exception in ``write`` leaves ``path`` as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)            # the rename itself survives a power cut
    finally:
        os.close(folder)


def write_text(path: Path, text: str) -> None:
    """``atomic_write`` of ``text`` as UTF-8."""
    atomic_write(path, lambda file: file.write(text.encode()))


@contextmanager
def locked(path: Path, *, waiting: str = "") -> Iterator[None]:
    """Hold the exclusive lock of ``path`` for the block, after any other holder has released it.

    waiting: a line printed when another process holds the lock (empty: wait silently). Every writer
    of ``path`` must hold its lock: on entry the temporaries that a killed writer left behind
    (``.<name>.*.tmp``) are removed.
    """
    with _lock(path, wait=True, waiting=waiting):
        yield


@contextmanager
def try_locked(path: Path) -> Iterator[bool]:
    """Like ``locked``, without waiting: the block gets True holding the lock, or False, holding
    nothing, while another process holds it (then it must not write ``path``)."""
    with _lock(path, wait=False) as held:
        yield held


@contextmanager
def _lock(path: Path, *, wait: bool, waiting: str = "") -> Iterator[bool]:
    """The lock of ``locked`` (wait True) or ``try_locked`` (False); yields whether it is held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            if waiting:
                print(waiting, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            stale.unlink(missing_ok=True)
        yield True
