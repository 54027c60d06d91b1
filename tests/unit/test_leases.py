"""The lease logic of team runs (fleet.adapters.leases) that needs no server: what a lease object may say (it
is untrusted: anyone with the bucket's credentials writes it), when a holder is live, and the folder a cluster
name gives. The conditional writes themselves run against a real S3 server in
tests/integration/test_team_leases.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from fleet.adapters import proc
from fleet.adapters.leases import TTL_S, Lease, Seen, _live, cluster_dir, holder_name


def lease(**over: object) -> Lease:
    base = dict(cluster="eu-1", kind="bootstrap", command="fleet bootstrap eu-1", holder="alice@laptop",
                host="laptop-of-alice", pid=4242, pid_start="1", run_id="20260101T000000Z-abcdef",
                started="2026-01-01T00:00:00Z", heartbeat="2026-01-01T00:00:10Z", ttl_s=45.0)
    base.update(over)
    return Lease(**base)  # type: ignore[arg-type]


def test_a_lease_round_trips_and_garbage_is_no_lease() -> None:
    lz = lease()
    assert Lease.parse(lz.to_bytes()) == lz
    for raw in (b"", b"not json", b"[1, 2]", b'{"cluster": "eu-1"}', b'{"cluster": 1, "command": "x", '
                b'"holder": "h", "pid": "not a number"}', json.dumps({"x": "y" * 10}).encode()):
        assert Lease.parse(raw) is None, raw


def test_a_hostile_lease_is_cut_to_size() -> None:
    raw = json.dumps({"cluster": "eu-1", "command": "c" * 100_000, "holder": "h" * 100_000, "run_id": "r" * 500})
    lz = Lease.parse(raw.encode())
    assert lz is not None and len(lz.command) == 200 and len(lz.holder) == 200 and len(lz.run_id) == 64
    assert lz.ttl_s == TTL_S  # a lease that names no TTL gets the default one


def test_a_hostile_lease_says_one_line_whatever_it_holds() -> None:
    """Its fields are printed in a refusal: newlines, escape codes and bidi controls never reach the terminal."""
    for bad in ("\n✗ forged second line", "\x1b[2J", "\r", "\u202eevil", "\u2028", "\x85"):
        raw = json.dumps({"cluster": "eu-1", "command": f"fleet {bad}", "holder": f"mallory{bad}@x",
                          "host": bad, "run_id": bad, "started": bad})
        lz = Lease.parse(raw.encode())
        assert lz is not None
        for v in (lz.command, lz.holder, lz.host, lz.run_id, lz.started):
            assert v.isprintable() and "\u202e" not in v, repr(v)
        assert "\n" not in Seen(lz, "etag", 1.0, True).describe()


def test_a_lease_never_lives_longer_than_the_longest_ttl_whatever_it_says() -> None:
    from fleet.adapters.leases import MAX_TTL_S

    for said in (1e12, float("inf"), float("nan"), -5, 0):
        raw = json.dumps({"cluster": "eu-1", "command": "c", "holder": "h", "ttl_s": said}).encode()
        lz = Lease.parse(raw)
        assert lz is not None and lz.ttl_s == TTL_S, said
        assert not _live(lz, TTL_S + 1)  # expired after the default TTL, not after a year
    lz = Lease.parse(json.dumps({"cluster": "eu-1", "command": "c", "holder": "h", "ttl_s": MAX_TTL_S}).encode())
    assert lz is not None and lz.ttl_s == MAX_TTL_S


def test_a_lease_is_live_until_its_ttl_passes_by_the_servers_clock() -> None:
    other_host = lease(host="not-this-host-" + os.uname().nodename)
    assert _live(other_host, 0.0) and _live(other_host, 44.9)
    assert not _live(other_host, 45.1)
    assert not _live(lease(host="elsewhere", released=True), 0.0)  # released: free at once


def test_a_holder_of_this_host_that_is_gone_is_dead_at_once_a_live_one_is_not() -> None:
    me = os.uname().nodename
    assert _live(lease(host=me, pid=os.getpid(), pid_start=proc.start_time(os.getpid())), 1.0)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start = proc.start_time(child.pid)
    child.wait()
    assert not _live(lease(host=me, pid=child.pid, pid_start=start), 1.0)
    # the same pid taken by another process later is not the holder: its start time differs
    assert not _live(lease(host=me, pid=os.getpid(), pid_start="1"), 1.0)


def test_the_folder_of_a_cluster_never_leaves_the_runs_folder() -> None:
    assert cluster_dir("eu-1") == "fleet/runs/eu-1/"
    for name in ("../x", "a/b", "", "A", "x" * 300):
        d = cluster_dir(name)
        assert d.startswith("fleet/runs/x-") and d.count("/") == 3, d


def test_a_refusal_names_holder_host_command_and_since_when() -> None:
    seen = Seen(lease(), '"etag"', 12.4, True)
    text = seen.describe()
    for part in ("alice@laptop", "fleet bootstrap eu-1", "laptop-of-alice", "since 2026-01-01T00:00:00Z",
                 "12 s ago"):
        assert part in text, text
    assert "@" in holder_name()
