"""Write examples/wandb_runs.csv: a small W&B-style export of an lr x batch sweep, for the README's tour.

The runs are synthetic, drawn from a known truth so that what ``oasl fit`` recovers can be checked: the optimal
learning rate and batch size follow Step Law's formulas (Li et al. 2025, Eq. 1-2: lr* = 1.79 N^-0.713 D^0.307,
B* = 0.58 D^0.571 tokens), the loss a Chinchilla-style L(N, D) (Hoffmann et al. 2022) plus a quadratic valley in
log lr and log batch, with Gaussian noise of 0.002 nats. Columns are named as a W&B export of such a sweep would
name them (``N``, ``D``, ``bs`` in sequences of 2048 tokens, ``smooth loss``), so importing it needs the
``--column-map`` and ``--set`` of the tour. Run: ``python examples/make_wandb_csv.py`` (seeded: same file).
"""

from pathlib import Path

import numpy as np

SEQ_LEN = 2048


def main(path: Path = Path(__file__).with_name("wandb_runs.csv")) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for n in (5e7, 1e8, 2e8):
        d = 20 * n
        lr_opt = 1.79 * n**-0.713 * d**0.307
        bs_opt = 0.58 * d**0.571 / SEQ_LEN  # sequences
        base = 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28
        for bs in (32, 64, 128, 256):
            for lr in np.geomspace(lr_opt / 6, lr_opt * 6, 6):
                loss = base + 0.02 * np.log(lr / lr_opt) ** 2 + 0.01 * np.log(bs / bs_opt) ** 2
                noise = rng.normal(0, 0.002)
                rows.append(
                    (
                        f"n{n:.0e}_bs{bs}_lr{lr:.2e}",
                        "finished",
                        int(n),
                        int(d),
                        bs,
                        f"{lr:.4g}",
                        f"{loss + noise + abs(rng.normal(0, 0.01)):.4f}",
                        f"{loss + noise:.4f}",
                    )
                )
    header = "Name,State,N,D,bs,lr,loss,smooth loss"
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")


if __name__ == "__main__":
    main()
