from pathlib import Path

from paperkd.records import git_commit, run_environment


def test_git_commit_names_this_checkout(monkeypatch):
    monkeypatch.delenv("PAPERKD_GIT_COMMIT", raising=False)
    commit = git_commit()
    if (Path(__file__).resolve().parents[1] / ".git").exists():  # a clone: the commit must be found
        assert commit is not None and len(commit.removesuffix("-dirty")) == 40
        assert all(c in "0123456789abcdef" for c in commit.removesuffix("-dirty"))
    else:
        assert commit is None


def test_git_commit_from_the_environment_wins(monkeypatch):
    # a copy of the tree on a remote GPU machine may carry a stale .git: the caller names the commit it sent
    monkeypatch.setenv("PAPERKD_GIT_COMMIT", "d039a169121ad0b6c30611f3594dd6c588185129")
    assert git_commit() == "d039a169121ad0b6c30611f3594dd6c588185129"
    assert run_environment("cpu")["git_commit"] == "d039a169121ad0b6c30611f3594dd6c588185129"
