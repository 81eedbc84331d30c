"""A stand-in training script for the trainer tests: a loss with a known optimum in lr, reported through
oasl.integrations.reporter. --mode picks a fault (crash, silent, nofinal, nan, sleep, badjson) or prints its losses instead
(print: to stdout with steps; logging: through `logging`, to stderr, without steps)."""

import argparse
import math
import sys
import time

from oasl.integrations import reporter

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, required=True)
p.add_argument("--steps", type=int, required=True)
p.add_argument("--width", type=int, required=True)
p.add_argument("--depth", type=int, default=2)
p.add_argument("--mode", default="ok")
a = p.parse_args()
if a.mode == "crash":
    print("Traceback: something broke\nValueError: bad thing in the user's script", file=sys.stderr)
    sys.exit(3)
if a.mode == "silent":
    sys.exit(0)
if a.mode == "sleep":
    time.sleep(60)
if a.mode == "badjson":
    import os

    with open(os.environ["OASL_REPORT_FILE"], "a") as f:
        f.write("not json\n")
    sys.exit(0)
n = 12 * a.width**2 * a.depth
loss = math.nan
if a.mode in ("print", "logging"):  # a script that only prints its losses (read by trainer.loss_pattern)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")  # to stderr
    for s in range(10, a.steps + 1, 10):
        loss = 3 + (math.log10(a.lr) + 2.5) ** 2 + 100 / n**0.3 / s**0.2
        if a.mode == "print":
            print(f"step {s}: train loss {loss + 0.1:.4f}, val loss {loss:.4f}", flush=True)
        else:
            logging.info("eval val_loss=%.4f", loss)
    sys.exit(0)
for s in range(10, a.steps + 1, 10):
    loss = 3 + (math.log10(a.lr) + 2.5) ** 2 + 100 / n**0.3 / s**0.2
    reporter.log(step=s, loss=loss, tokens=s * 1024)
if a.mode == "nofinal":
    sys.exit(0)
reporter.final(loss=math.nan if a.mode == "nan" else loss, n_params=n, tokens=a.steps * 1024)
