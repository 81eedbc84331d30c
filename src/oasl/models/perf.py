"""The machine's measured matmul throughput, the denominator of model FLOP utilization (MFU)."""

from __future__ import annotations

import time


def measure_matmul_peak(seconds: float = 1.0, size: int = 2048, device: str = "cpu") -> float:
    """Measured fp32 throughput of ``size x size`` matmuls on ``device`` in FLOP/s (2 size^3 per product).

    Runs repeated ``torch.matmul`` for about ``seconds`` with torch's current thread count, after one
    warm-up product. This is an achievable peak, not the vendor's datasheet figure (PaLM, App. B, divides
    by the latter), so MFU against it is higher than against the datasheet.
    """
    import torch

    from oasl.errors import ConfigError

    if seconds <= 0 or size < 1:
        raise ConfigError(f"measure_matmul_peak needs seconds > 0 and size >= 1, got {seconds}, {size}")
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    a = torch.randn(size, size, device=dev)
    b = torch.randn(size, size, device=dev)
    torch.matmul(a, b)
    sync()
    n, t0 = 0, time.perf_counter()
    while True:
        torch.matmul(a, b)
        n += 1
        if n % 4 == 0 or dev.type != "cuda":  # sync every few products on a GPU to keep the queue short
            sync()
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                return 2.0 * size**3 * n / elapsed
