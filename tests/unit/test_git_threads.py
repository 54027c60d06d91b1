"""One GitRepo shared by threads (as bootstrap waves do) reads correctly."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fleet.adapters.git import GitRepo
from fleet.registry import load_registry
from tests.helpers import new_fleet_repo


@pytest.mark.timeout(120)  # without the adapter's lock, git cat-file replies interleave and hang
def test_threads_share_one_repo(tmp_path: Path) -> None:
    root = new_fleet_repo(tmp_path, clusters={f"c{i}": ("dev", "staging", "prod")[i % 3] for i in range(12)})
    g = GitRepo.open(root)
    expected = load_registry(root, "HEAD").clusters

    def read(_: int) -> dict[str, object]:
        reg = load_registry(g, "HEAD")
        assert g.log(["clusters"], max_count=3)
        return dict(reg.clusters)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(read, range(32)))
    assert all(r == expected for r in results)
