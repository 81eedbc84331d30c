"""A shell command as a trainer: ``trainer: {command: "python train.py --lr {lr} --steps {steps}"}``.

Each run's command is the template with ``{field}`` replaced by the run's params
(:func:`oasl.trainers.params.run_params`; ``{{`` and ``}}`` are literal braces). The process also gets:

- ``OASL_RUN_CONFIG``: a JSON file holding every param (and ``OASL_RUN_KEY``, the run's store key);
- ``OASL_<FIELD>`` for each scalar param (``OASL_LR``, ``OASL_BATCH_SEQS``, ``OASL_STEPS``, ...);
- ``OASL_REPORT_FILE``: where it reports, one JSON object per line (:mod:`oasl.integrations.reporter`
  writes them): ``{"step": 100, "loss": 3.21, "tokens": 204800, "grad_norm": 0.8}`` during training and
  ``{"final": true, "loss": 3.05, "n_params": 1234567, "tokens": 1024000}`` at the end.

A script that prints its losses instead (and cannot be changed to report) can be read through
``trainer.loss_pattern``, a regular expression over every line it prints (stdout and stderr) with a named
group ``loss`` (optionally ``step`` and ``n_params``): each match with a step is a point of the curve (it
feeds pruning and the early warning), the last match's loss is the final loss. A final record in the
report file, when there is one, wins.

The command starts in its own process group (its own session), so oasl ends it and everything it
started: when the run is pruned or flagged, past ``timeout_s``, when oasl is interrupted, and, through
a small watchdog process, when oasl is killed outright (SIGKILL). A command that exits non-zero, reports
nothing, reports a non-finite final loss or no final loss, or outlives ``timeout_s`` raises
:class:`~oasl.errors.TrainerError` with the reason and the tail of its stderr: the sweep stores the run
as failed and goes on.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from oasl.config import RunSpec, TrainerSpec
from oasl.errors import ConfigError, TrainerError
from oasl.trainers.base import Trainer, Trial
from oasl.trainers.params import run_params

POLL_S = 0.05  # how often the report file is read while the command runs
STOP_GRACE_S = 5.0  # after SIGTERM, seconds before the group gets SIGKILL
TAIL_LINES = 20  # stderr lines kept with a failed run
REPORT_ENV = "OASL_REPORT_FILE"
CONFIG_ENV = "OASL_RUN_CONFIG"

# Runs in its own small process: when the sweep's process dies (even by SIGKILL), it kills the command's
# process group. It polls its parent, as POSIX has no portable parent-death signal for a whole group.
_WATCHDOG = """
import os, signal, sys, time
parent, pgid = int(sys.argv[1]), int(sys.argv[2])
while True:
    try:
        os.killpg(pgid, 0)
    except OSError:
        sys.exit(0)
    if os.getppid() != parent:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
        sys.exit(0)
    time.sleep(0.5)
"""


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names of a command template (ConfigError on a malformed one)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(
            f"trainer.command {template!r} is malformed ({exc}); write literal braces as {{{{ and }}}}"
        ) from None
    return [f for _, f, _, _ in parsed if f is not None]


def render(template: str, params: dict[str, Any]) -> str:
    """The command of one run: ``template`` with each ``{field}`` replaced by ``params[field]``."""
    missing = [f for f in template_fields(template) if f not in params]
    if missing:
        raise ConfigError(
            f"trainer.command names {{{missing[0]}}}, which the runs do not have: use one of "
            f"{', '.join(sorted(k for k, v in params.items() if not isinstance(v, (dict, list))))}"
        )
    return template.format_map(params)


def env_of(params: dict[str, Any]) -> dict[str, str]:
    """``OASL_<FIELD>`` variables of the scalar params (booleans as 0/1, None as the empty string)."""
    out = {}
    for k, v in params.items():
        if isinstance(v, (dict, list, tuple)):
            continue
        name = "OASL_" + "".join(c if c.isalnum() else "_" for c in str(k)).upper()
        out[name] = "" if v is None else str(int(v)) if isinstance(v, bool) else str(v)
    return out


def complete_lines(path: Path, offset: int) -> tuple[list[bytes], int]:
    """The complete lines of ``path`` from byte ``offset`` and the new offset (a line still being written
    is left for the next read); none while the file does not exist yet."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(), offset + end


def read_reports(path: Path, offset: int) -> tuple[list[dict], int]:
    """Complete JSON lines of the report file from byte ``offset``; the records and the new offset (a line
    still being written is left for the next read). TrainerError naming the line on malformed JSON."""
    lines, offset = complete_lines(path, offset)
    records = []
    for line in lines:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise TrainerError(
                f"the report file has a line that is not JSON: {line[:120]!r}; write one JSON object per line "
                "(oasl.integrations.reporter does)"
            ) from None
        if not isinstance(rec, dict):
            raise TrainerError(f"the report file has a line that is not a JSON object: {line[:120]!r}")
        records.append(rec)
    return records, offset


class OutputReader:
    """Reads the complete lines a command has printed so far (its stdout and stderr logs) and turns each
    match of ``pattern`` into a report record: ``{"step": s, "loss": l}`` when the match has a step, and
    ``last`` the newest match's values (the final loss unless the report file gives one)."""

    def __init__(self, pattern: str, paths: list[Path]):
        self.regex = re.compile(pattern)
        self.offsets = {p: 0 for p in paths}
        self.last: dict[str, Any] = {}
        self.matches = 0

    def read(self) -> list[dict]:
        records = []
        for path, offset in self.offsets.items():
            lines, self.offsets[path] = complete_lines(path, offset)
            for raw in lines:
                line = raw.decode("utf-8", errors="replace")
                m = self.regex.search(line)
                if m is None:
                    continue
                try:
                    loss = float(m.group("loss"))
                except ValueError:
                    raise TrainerError(
                        f"trainer.loss_pattern matched {line.strip()[:120]!r} but its loss group "
                        f"{m.group('loss')!r} is not a number"
                    ) from None
                self.matches += 1
                got = m.groupdict()
                self.last = {"loss": loss}
                if got.get("n_params"):
                    self.last["n_params"] = int(float(got["n_params"]))
                if got.get("step"):
                    records.append({"step": int(float(got["step"])), "loss": loss})
        return records


def _feed(trial: Trial, rec: dict, final: dict[str, Any]) -> bool:
    """Pass one report record to the trial; True when the run should stop."""
    if rec.get("final"):
        final.update({k: v for k, v in rec.items() if k != "final"})
        return False
    if "step" not in rec or "loss" not in rec:
        raise TrainerError(
            f"a report line lacks `step` or `loss`: {json.dumps(rec)[:120]}; write "
            '{"step": s, "loss": l} during training and {"final": true, "loss": l, "n_params": n} at the end'
        )
    loss = rec["loss"]
    return trial.report(
        rec["step"],
        math.nan if loss is None else loss,
        tokens=rec.get("tokens"),
        grad_norm=rec.get("grad_norm"),
        train_loss=rec.get("train_loss"),
    )


def kill_group(proc: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM ``proc``'s process group, then SIGKILL after ``grace_s`` if anything is left."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader is gone; children of the group may remain
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a text file ('' when absent)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(deque(f, maxlen=lines)).rstrip()
    except FileNotFoundError:
        return ""


class CommandTrainer(Trainer):
    """Trains a run by running a shell command (see the module docstring)."""

    kind = "command"

    def __init__(self, spec: TrainerSpec):
        self.spec = spec
        template_fields(spec.command or "")

    def check(self, runs: list[RunSpec]) -> None:
        for r in runs[:1] + runs[-1:]:
            render(self.spec.command or "", run_params(r))
        if self.spec.cwd is not None and not Path(self.spec.cwd).is_dir():
            raise ConfigError(
                f"trainer.cwd {self.spec.cwd!r} is not a folder: give the folder the command runs in"
            )

    def run(self, trial: Trial) -> dict[str, Any]:
        params = trial.params
        command = render(self.spec.command or "", params)
        work = Path(tempfile.mkdtemp(prefix=f"oasl-run-{trial.key}-"))
        report, config, stderr_path = work / "report.jsonl", work / "config.json", work / "stderr.log"
        stdout_path = work / "stdout.log"
        pattern = self.spec.loss_pattern
        output = OutputReader(pattern, [stdout_path, stderr_path]) if pattern is not None else None
        stop_file = work / "stop"
        config.write_text(json.dumps(params, indent=1, default=str))
        report.touch()
        env = {
            **os.environ,
            **env_of(params),
            **self.spec.env,
            REPORT_ENV: str(report),
            CONFIG_ENV: str(config),
            "OASL_RUN_KEY": trial.key,
            "OASL_STOP_FILE": str(stop_file),
            "PYTHONUNBUFFERED": "1",
        }
        final: dict[str, Any] = {}
        n_records, offset, stopped_by_oasl = 0, 0, False
        t0 = time.monotonic()
        try:
            with (
                open(stderr_path, "wb") as err,
                open(stdout_path, "wb") if output is not None else contextlib.nullcontext() as out,
            ):
                if out is not None:
                    stdout = out  # read by the loss pattern
                else:
                    stdout = subprocess.DEVNULL if os.environ.get("OASL_COMMAND_STDOUT") != "1" else None
                proc = subprocess.Popen(
                    command,
                    shell=True,
                    cwd=self.spec.cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=err,
                    start_new_session=True,  # its own process group: oasl ends the whole group
                )
            watchdog = subprocess.Popen(
                [sys.executable, "-S", "-c", _WATCHDOG, str(os.getpid()), str(proc.pid)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                while True:
                    code = proc.poll()
                    records, offset = read_reports(report, offset)
                    if output is not None:
                        records += output.read()
                    for rec in records:
                        n_records += 1
                        if _feed(trial, rec, final) and not stopped_by_oasl:
                            stopped_by_oasl = True
                            stop_file.touch()
                            kill_group(proc)
                    if code is not None or stopped_by_oasl:
                        break
                    if self.spec.timeout_s is not None and time.monotonic() - t0 > self.spec.timeout_s:
                        kill_group(proc, grace_s=1.0)
                        raise TrainerError(
                            f"the command ran past trainer.timeout_s = {self.spec.timeout_s:g} s and was killed: "
                            "raise timeout_s or shorten the run",
                            tail(stderr_path),
                        )
                    time.sleep(POLL_S)
            finally:
                if proc.poll() is None:  # interrupted (KeyboardInterrupt, SIGTERM as an exception): end it
                    kill_group(proc, grace_s=1.0)
                # whatever the command left behind in its group (a data loader, a stray child)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                watchdog.kill()
                watchdog.wait()
            records, offset = read_reports(report, offset)
            if output is not None:
                records += output.read()
            for rec in records:
                n_records += 1
                _feed(trial, rec, final)
            if output is not None and final.get("loss") is None and output.matches:
                final.update(output.last)  # the last printed loss, unless the report file gave a final one
                n_records += 1
            if stopped_by_oasl:
                return {**final, "loss": final.get("loss")}
            if code != 0:
                raise TrainerError(f"the command exited with code {code}: {command}", tail(stderr_path))
            if n_records == 0:
                if output is not None:
                    raise TrainerError(
                        f"no line the command printed matched trainer.loss_pattern {pattern!r} (and it wrote "
                        f"nothing to ${REPORT_ENV}): check the pattern against its output",
                        tail(stdout_path) or tail(stderr_path),
                    )
                raise TrainerError(
                    f"the command wrote nothing to ${REPORT_ENV}: report with `from oasl.integrations import "
                    "reporter; reporter.final(loss=..., n_params=...)` at its end, or set trainer.loss_pattern "
                    "to read the loss it prints",
                    tail(stderr_path),
                )
            if final.get("loss") is None:
                if trial.should_stop:
                    return {**final, "loss": None}
                raise TrainerError(
                    f'the command reported no final loss ({n_records} line(s), none with "final": true): end it '
                    "with reporter.final(loss=..., n_params=...)",
                    tail(stderr_path),
                )
            return final
        finally:
            shutil.rmtree(work, ignore_errors=True)
