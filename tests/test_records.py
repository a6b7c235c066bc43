from paperkd.records import git_commit, run_environment


def test_git_commit_names_this_checkout():
    commit = git_commit()
    assert commit is None or len(commit.removesuffix("-dirty")) == 40


def test_git_commit_from_the_environment_wins(monkeypatch):
    # a copy of the tree on a remote GPU machine may carry a stale .git: the caller names the commit it sent
    monkeypatch.setenv("PAPERKD_GIT_COMMIT", "d039a169121ad0b6c30611f3594dd6c588185129")
    assert git_commit() == "d039a169121ad0b6c30611f3594dd6c588185129"
    assert run_environment("cpu")["git_commit"] == "d039a169121ad0b6c30611f3594dd6c588185129"
