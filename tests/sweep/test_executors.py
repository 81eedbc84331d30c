import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from oasl.config import build
from oasl.errors import SweepError
from oasl.store import SQLiteStore
from oasl.sweep import (
    Execution,
    GroupBoard,
    GroupPruner,
    Pruning,
    SweepSpec,
    expand,
    load_sweep,
    plan,
    run_sweep,
)
from oasl.sweep.claims import owner_dead, owner_id
from oasl.sweep.execute import resolve_execution
from oasl.sweep.executors import (
    THREADS_ENV,
    choose_members,
    cpu_cores,
    device_for,
    gpu_slots,
    split_batches,
    worker_threads,
)
from oasl.sweep.ray_executor import inflight_limit, ray_resources
from oasl.testing import run_cli, tiny_run

TINY = {
    "name": "tiny",
    "shape_defaults": {"seq_len": 32},
    "run": {"eval_interval": 10, "eval_tokens": 1024, "device": "cpu"},
    "ladder": {"widths": [32], "depth": 1},
    "batch_seqs": 4,
    "tokens": 4 * 32 * 30,
}


def tiny_sweep(**kw) -> SweepSpec:
    return build(SweepSpec, {**TINY, "optimizers": {"adamw": {"lr": [1e-3, 3e-3]}}, **kw})


def test_gpu_slots_and_devices():
    assert gpu_slots(3, 0) == [None, None, None]  # no GPU: CPU workers
    assert gpu_slots(4, 2) == [0, 1, 0, 1]  # workers dealt over the GPUs
    assert gpu_slots(1, 2, runs_per_gpu=3) == [0, 1, 0, 1, 0, 1]  # 3 per GPU
    assert device_for("auto", 1) == "cuda:1" and device_for("cuda", 0) == "cuda:0"
    assert (
        device_for("cpu", 1) == "cpu"
        and device_for("cuda:3", 1) == "cuda:3"
        and device_for("auto", None) == "auto"
    )
    spec = tiny_run(device="auto")
    moved = spec.model_copy(update={"device": device_for(spec.device, 2)})
    assert moved.device == "cuda:2" and moved.key() == spec.key()  # where a run trains is not its identity


def test_members_from_memory_and_batch_split():
    gib = 1 << 30
    assert choose_members(100 << 20, 4 * gib, 2) == 10  # half of 2 GiB per worker, 100 MiB per member
    assert choose_members(100 << 20, 4 * gib, 2, cap=4) == 4 and choose_members(8 * gib, gib, 1) == 1
    grid = [tiny_run(lr=lr) for lr in (1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3, 7e-3, 8e-3, 9e-3)]
    assert [len(b) for b in split_batches([grid], [9], 1)] == [9]
    assert sorted(len(b) for b in split_batches([grid], [9], 2)) == [4, 5]  # both workers busy
    assert sorted(len(b) for b in split_batches([grid], [4], 1)) == [3, 3, 3]  # K<=4, balanced
    assert sorted(len(b) for b in split_batches([grid[:3]], [3], 2)) == [3]  # too few to split
    out = split_batches([grid, grid[:2]], [9, 9], 2)
    assert sorted(len(b) for b in out) == [2, 9] and sum(map(len, out)) == 11


def test_ray_resource_requests():
    runs = [tiny_run(device="auto")]
    assert ray_resources(0.25, 8, runs) == 0.25  # fractions pack four runs per GPU
    assert ray_resources(None, 8, runs) == 1.0 and ray_resources(None, 0, runs) == 0.0
    assert ray_resources(None, 8, [tiny_run(device="cpu")]) == 0.0
    assert inflight_limit(2, 16, 4, 1, 0.25) == 16 and inflight_limit(2, 16, 1, 1, 1) == 2
    assert inflight_limit(1, 8, 0, 2, 0) == 4


def test_execution_block_and_flags(tmp_path):
    base = Execution(executor="local", workers=3, members=4)
    merged = resolve_execution(base, executor="batched", members=2)
    assert (merged.executor, merged.workers, merged.members) == ("batched", 3, 2)
    assert resolve_execution(base, backend="ray").executor == "ray"  # the old argument name
    for kw, msg in [
        ({"executor": "nosuch"}, "unknown executor 'nosuch'"),
        ({"members": 0}, "--members must be"),
        ({"workers": 0}, "--workers must be"),
        ({"gpus_per_run": float("nan")}, "--gpus-per-run must be a finite"),
        ({"threads": 0}, "--threads must be"),
    ]:
        with pytest.raises(SweepError, match=msg):
            resolve_execution(base, **kw)
    spec = tiny_sweep(execution={"executor": "local", "workers": 2})
    assert spec.execution.workers == 2
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump({**TINY, "optimizers": {"adamw": {"lr": [1e-3]}}, "execution": {"membres": 2}})
    )
    with pytest.raises(Exception, match="execution.membres: unknown key"):
        load_sweep(path)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--executor", "nosuch"], "unknown executor 'nosuch': use one of auto, local, batched, ray"),
        (["--members", "0"], "--members must be a whole number of at least 1"),
        (["--executor", "ray"], "pip install 'oasl[ray]'"),
    ],
)
def test_cli_executor_errors_are_one_line(flags, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as where Ray is not installed
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**TINY, "optimizers": {"adamw": {"lr": [1e-3]}}}))
    code, out, err = run_cli(["sweep", "run", str(path), "--store", str(tmp_path / "r.db"), *flags], capsys)
    assert code == 2 and message in err and err.strip().count("\n") == 0
    assert not (tmp_path / "r.db").exists() or not SQLiteStore(tmp_path / "r.db").statuses()


def test_store_claims_lease_and_takeover(tmp_path):
    st = SQLiteStore(tmp_path / "r.db")
    a, b = "runA", "runB"
    assert st.claim([a, b], "me", 30) == [a, b]
    assert st.claim([a], "other", 30) == []  # live claim: skipped
    assert st.renew([a], "me", 30) == [a] and st.renew([a], "other", 30) == []
    st.release([b], "me")
    assert set(st.live_claims()) == {a}
    assert st.claim([b], "other", 0.05) == [b]
    time.sleep(0.1)
    assert st.claim([b], "me", 30) == [b]  # expired: taken over
    assert st.claim([a], "other", 30, dead=lambda owner: owner == "me") == [a]  # dead owner: taken over
    st.put(_fake_done(tiny_run()))
    assert st.claim([tiny_run().key()], "me", 30) == []  # finished runs are never claimed
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    host_pid = owner_id().rsplit(":", 2)
    assert owner_dead(f"{host_pid[0]}:{dead.stdout.strip()}:x") and not owner_dead(owner_id())
    assert not owner_dead("elsewhere:1:x")  # other hosts: only the lease ends their claims


def _fake_done(spec):
    from oasl.train import RunResult

    return RunResult(
        spec=spec,
        status="done",
        final_val_loss=3.0,
        curve=[{"step": 1, "val_loss": 3.0}],
        n_params=1,
        n_params_total=1,
        flops=1.0,
        tokens_trained=1,
        steps_done=1,
        tokens_per_s=1.0,
        wall_s=1.0,
        initial_val_loss=5.0,
    )


CLAIMER = """
import sys, time
from oasl.store import SQLiteStore
from oasl.sweep.claims import Lease
with Lease(SQLiteStore(sys.argv[1]), [sys.argv[2]], lease_s=1.0) as lease:
    print("claimed" if lease.claimed else "missed", flush=True)
    time.sleep(600)
"""

SWEEPER = """
import json, sys
from oasl.sweep import expand, load_sweep, run_sweep
print("ready", flush=True)
s = run_sweep(expand(load_sweep(sys.argv[1])), sys.argv[2], executor="local")
print(json.dumps({"done": s.done, "skipped": s.skipped}), flush=True)
"""


def test_dead_claimer_is_taken_over_exactly_once(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**TINY, "optimizers": {"adamw": {"lr": [1e-3, 3e-3]}}}))
    db = str(tmp_path / "runs.db")
    runs = expand(load_sweep(path))
    held = runs[0].key()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    claimer = subprocess.Popen(
        [sys.executable, "-c", CLAIMER, db, held], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert claimer.stdout.readline().strip() == "claimed"
        time.sleep(1.5)  # past one lease: only the heartbeat keeps the claim live
        s = run_sweep(runs, db, executor="local", wait=False)
        assert (s.done, s.busy) == (1, 1) and SQLiteStore(db).status(held) is None  # live claim skipped
    finally:
        os.kill(claimer.pid, signal.SIGKILL)
        claimer.wait()
    # two sweeps (another process and this one) race for the dead claimer's run: one trains it, the
    # other skips its live claim, waits, and finds it done
    other = subprocess.Popen(
        [sys.executable, "-c", SWEEPER, str(path), db], stdout=subprocess.PIPE, text=True, env=env
    )
    assert other.stdout.readline().strip() == "ready"  # imports done: the two start together
    mine = run_sweep(runs, db, executor="local")
    theirs = json.loads(other.communicate(timeout=240)[0].strip().splitlines()[-1])
    assert sorted([mine.done, theirs["done"]]) == [0, 1] and sorted([mine.skipped, theirs["skipped"]]) == [
        1,
        2,
    ]
    st = SQLiteStore(db)
    assert st.status(held) == "done" and st.attempts(held) == 1 and not st.live_claims()
    assert len(st.curve(held)) == runs[0].steps


def test_group_board_and_pruner():
    board = GroupBoard()
    board.report("g", "a", 10, 3.0)
    board.report("g", "a", 20, 2.5)
    board.report("g", "b", 10, 4.0)
    board.report("h", "c", 10, 1.0)
    assert board.best_at("g", "b", 15) == {"a": 3.0} and board.best_at("g", "x", 20) == {"a": 2.5, "b": 4.0}
    spec = tiny_run()  # 60 steps; checkpoint at 20
    prune = Pruning(enabled=True, checkpoints=(0.34,), margin=0.05, min_runs=1)
    p = GroupPruner(spec, prune, lambda step: board.best_at("g", spec.key(), step))
    assert p(10, 9.0, []) is None  # before the checkpoint
    assert "worse than the group's best 2.5000" in p(20, 2.7, [])
    assert GroupPruner(spec, prune, lambda step: {})(20, 9.0, []) is None  # nobody to compare with


def test_ray_executor_prunes_through_the_board(tmp_path):
    pytest.importorskip(
        "ray", reason="ray is not installed: `pip install 'oasl[ray]'` to test the Ray executor"
    )
    spec = tiny_sweep(
        optimizers={"adamw": {"lr": [5e-3, 1e-5]}},
        pruning={"enabled": True, "checkpoints": [0.34], "margin": 0.02, "min_runs": 1},
    )
    runs = expand(spec)
    db = tmp_path / "runs.db"
    good = [r for r in runs if r.lr == 5e-3]
    run_sweep(good, db, executor="local")  # a finished run of the group, read by the driver into the board
    s = run_sweep(runs, db, workers=2, backend="ray", pruning=spec.pruning)  # backend: the old name
    assert s.executor == "ray" and s.stopped == 1 and s.skipped == 1 and s.flops_saved > 0
    row = SQLiteStore(db).to_dataframe().set_index("lr").loc[1e-5]
    assert row["status"] == "stopped" and "pruned" in row["stop_reason"]


def test_torch_threads_per_worker(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert worker_threads(1) == cpu_cores() and worker_threads(cpu_cores() + 5) == 1  # cores // workers
    assert worker_threads(4, threads=3) == 3
    monkeypatch.setenv(THREADS_ENV, "2")
    assert worker_threads(1) == 2 and worker_threads(1, threads=1) == 1  # the argument beats the variable
    monkeypatch.setenv(THREADS_ENV, "two")
    with pytest.raises(SweepError, match=r"\$OASL_THREADS must be a whole number of threads, got 'two'"):
        worker_threads(1)
    monkeypatch.delenv(THREADS_ENV)
    import torch

    before = torch.get_num_threads()
    runs = expand(tiny_sweep(optimizers={"adamw": {"lr": [1e-3]}}))
    # in this process: the run trains with the threads asked for, recorded in its result, then restored
    assert run_sweep(runs, tmp_path / "one.db", threads=1).done == 1
    assert torch.get_num_threads() == before
    assert SQLiteStore(tmp_path / "one.db").to_dataframe()["threads"].tolist() == [1]
    # two worker processes, each with the threads $OASL_THREADS asks for (not cores // 2)
    two = expand(tiny_sweep(optimizers={"adamw": {"lr": [1e-3, 3e-3]}}))
    asked = cpu_cores() // 2 + 1
    monkeypatch.setenv(THREADS_ENV, str(asked))
    assert run_sweep(two, tmp_path / "two.db", workers=2).done == 2
    assert SQLiteStore(tmp_path / "two.db").to_dataframe()["threads"].tolist() == [asked, asked]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**TINY, "optimizers": {"adamw": {"lr": [1e-3]}}}))
    code, _, err = run_cli(
        ["sweep", "run", str(path), "--store", str(tmp_path / "c.db"), "--threads", "0"], capsys
    )
    assert code == 2 and "--threads must be a whole number of at least 1" in err


def test_batched_executor_trains_the_runs_the_local_executor_would(tmp_path):
    pytest.importorskip("oasl.train.batched")
    spec = tiny_sweep(optimizers={"adamw": {"lr": [1e-3, 3e-3, 1e-2]}, "adafactor": {"lr": [1e-2]}})
    runs = expand(spec)
    # on CPU, "auto" trains one run per process: batching does not pay there (sweep_throughput benchmark)
    assert plan(runs, workers=1, measure=False).executor == "local"
    p = plan(runs, workers=1, executor="batched")
    assert p.executor == "batched" and p.batches == [3] and p.est_seconds > 0
    s = run_sweep(runs, tmp_path / "b.db", executor="batched")
    assert s.executor == "batched" and s.done == 4
    assert s.notes == [
        "note: 1 run(s) of adafactor do not batch (batched: adamw, lion, sgd); they train one per process"
    ]
    local = run_sweep(runs, tmp_path / "l.db")  # the default executor: auto, i.e. local on CPU
    assert local.executor == "local" and local.done == 4
    two = run_sweep(runs, tmp_path / "k2.db", executor="batched", members=2)  # batches of 2 and 1
    assert two.done == 4 and not two.notes[1:]
    a, b, c = (
        SQLiteStore(tmp_path / name).to_dataframe().set_index("key").sort_index()
        for name in ("b.db", "l.db", "k2.db")
    )
    assert list(a.index) == list(b.index) == list(c.index) == sorted(r.key() for r in runs)  # the same runs
    np.testing.assert_allclose(a["final_val_loss"], b["final_val_loss"], rtol=1e-4)
    np.testing.assert_allclose(c["final_val_loss"], b["final_val_loss"], rtol=1e-4)


def test_cli_plan_names_the_executor_and_its_batches(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    grid = {"adamw": {"lr": [1e-3, 2e-3, 3e-3, 4e-3, 5e-3]}, "adafactor": {"lr": [1e-2]}}
    path.write_text(yaml.safe_dump({**TINY, "optimizers": grid, "execution": {"workers": 2}}))
    code, out, err = run_cli(["sweep", "plan", str(path), "--no-measure", "--executor", "batched"], capsys)
    assert code == 0, err
    text = " ".join(out.split())
    assert "6 runs (6 to do)" in text and "batched executor, 2 worker(s), batches of 3, 2 runs" in text
    assert "assumes the machine stays as busy as when it was measured; load average" in text  # issue 26
    code, out, err = run_cli(["sweep", "plan", str(path), "--no-measure"], capsys)  # auto: local on CPU
    assert code == 0 and "local executor, 2 worker(s)" in " ".join(out.split())


PARENT_OF_A_POOL = """
import multiprocessing as mp, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from oasl.sweep.executors import _worker_init

if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=_worker_init, initargs=(1, None, os.getpid())) as pool:
        print(pool.submit(os.getpid).result(), flush=True)
        pool.submit(time.sleep, 120).result()  # a long run, as a training worker's
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc")
def test_pool_workers_exit_when_the_sweep_is_killed(tmp_path):
    """A sweep killed with SIGKILL must not leave its workers training on: they exit within seconds."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT_OF_A_POOL)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = None
    try:
        worker = int(parent.stdout.readline())
        assert _alive(worker)
        time.sleep(0.5)
        assert _alive(worker)  # the watch does not end a worker whose parent lives
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 20
        while _alive(worker) and time.time() < deadline:
            time.sleep(0.2)
        assert not _alive(worker)
    finally:
        parent.kill()
        if worker is not None and _alive(worker):  # the watch failed: leave no sleeper behind
            os.kill(worker, signal.SIGKILL)
