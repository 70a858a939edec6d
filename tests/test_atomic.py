import pytest

from ipoke.atomic import atomic_path, write_text


def test_file_written_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no temp left behind
    write_text(target, "new")
    assert target.read_text() == "new"


def test_directory_replaced_whole(tmp_path):
    target = tmp_path / "d"
    with atomic_path(target, directory=True) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target, directory=True) as tmp:
            (tmp / "b").write_text("2")
            raise KeyboardInterrupt
    assert [p.name for p in target.iterdir()] == ["a"]
    with atomic_path(target, directory=True) as tmp:
        (tmp / "c").write_text("3")
    assert [p.name for p in target.iterdir()] == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_creates_parents(tmp_path):
    write_text(tmp_path / "x" / "y" / "z.json", "{}")
    assert (tmp_path / "x" / "y" / "z.json").read_text() == "{}"
