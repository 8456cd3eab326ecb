"""Result files: written whole or not at all."""

from __future__ import annotations

import os

import pytest

from nas.reporting import files
from nas.reporting.files import write_atomic


def test_a_crash_while_writing_leaves_the_old_file_whole(tmp_path, monkeypatch):
    target = tmp_path / "leaderboard.csv"
    write_atomic(target, "rank,trial\n1,0\n")

    class Crash(Exception):
        pass

    real_write = os.fdopen

    def fdopen_that_dies_half_way(fd, mode="r", *args, **kwargs):
        fh = real_write(fd, mode, *args, **kwargs)
        original = fh.write

        def write(text):
            original(text[: len(text) // 2])  # half of the new file is on disk, then the crash
            raise Crash()

        fh.write = write
        return fh

    monkeypatch.setattr(files.os, "fdopen", fdopen_that_dies_half_way)
    with pytest.raises(Crash):
        write_atomic(target, "rank,trial\n1,0\n2,1\n3,2\n")
    assert target.read_text() == "rank,trial\n1,0\n"  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["leaderboard.csv"]  # no temporary left
    monkeypatch.undo()
    write_atomic(target, "rank,trial\n1,0\n2,1\n")
    assert target.read_text() == "rank,trial\n1,0\n2,1\n"
