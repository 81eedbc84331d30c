"""Session-wide test settings."""

import os


def pytest_configure(config):
    """Under pytest-xdist, give each worker process its share of the cores as torch threads: the default
    (every core in every worker) oversubscribes them, and autograd's double backward then ran 200x slower
    (tests/train/test_gns_hessian.py: 112 s beside another worker, 0.6 s alone)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers > 1:
        import torch

        from oasl.sweep.executors import cpu_cores

        torch.set_num_threads(max(1, cpu_cores() // workers))
