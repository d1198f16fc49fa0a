"""roadseg_ros.files: a file replaced whole or not at all, and a line appended and flushed."""

from __future__ import annotations

import pytest

from roadseg_ros.files import append_line, atomic_write


def test_atomic_write_replaces_the_file_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "state.bin"
    target.write_bytes(b"old")
    seen = []

    def write(tmp):
        seen.append(tmp)
        assert tmp.parent == tmp_path and tmp != target
        assert target.read_bytes() == b"old"        # the old file stays in place while the new one is written
        tmp.write_bytes(b"new")

    assert atomic_write(target, write) == target
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.bin"]
    assert not seen[0].exists()


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "last.pt"
    target.write_bytes(b"good checkpoint")

    def torn(tmp):
        tmp.write_bytes(b"half a chec")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, torn)
    assert target.read_bytes() == b"good checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_atomic_write_creates_a_new_file(tmp_path):
    atomic_write(tmp_path / "metrics.jsonl", lambda tmp: tmp.write_text("{}\n"))
    assert (tmp_path / "metrics.jsonl").read_text() == "{}\n"


def test_append_line_adds_one_line_at_a_time(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_line(path, '{"epoch": 1}')
    append_line(path, '{"epoch": 2}')
    assert path.read_text() == '{"epoch": 1}\n{"epoch": 2}\n'
