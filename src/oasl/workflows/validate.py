"""Validation, demo and report workflows."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def validate(
    spec: Any,
    *,
    store: str | Path = "runs.db",
    workers: int = 1,
    out: str | Path | None = None,
    log=None,
    progress=None,
):
    """Recommend at a larger target and compare the recommendation with an oracle grid and baselines
    there. ``spec``: a :class:`~oasl.validate.ValidateSpec`, its YAML file or a mapping. Every run goes to
    ``store`` (finished runs are reused); ``out`` gets ``validation.json`` and ``laws.json``. ``log(line)``
    receives progress lines, ``progress(label, total)`` returns a per-batch ``on_update(summary,
    pending)``. Returns a :class:`~oasl.validate.ValidationResult`."""
    from oasl.config import build
    from oasl.validate import ValidateSpec, load_validate
    from oasl.validate import validate as run_validation

    if isinstance(spec, dict):
        spec = build(ValidateSpec, spec, what="validation spec")
    elif not isinstance(spec, ValidateSpec):
        spec = load_validate(spec)
    return run_validation(spec, store, workers=workers, log=log, out=out, progress=progress)


def demo(out: str | Path = "oasl-demo", workers: int = 2, spec=None, log=None, progress=None):
    """Run the demo (:data:`oasl.validate.demo.DEMO`, or ``spec``) into ``out`` (store ``runs.db``,
    ``laws.json``, ``validation.json``, ``report/``).

    Returns ``(ValidationResult, FitReport, report_path)``.
    """
    from oasl.report.html import write_report
    from oasl.sweep import expand
    from oasl.validate.demo import demo_spec
    from oasl.validate.harness import validate as run_validation

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = spec or demo_spec()
    store = out / "runs.db"
    # the harness writes validation.json and laws.json (the law it validated, as `oasl fit` writes it)
    result = run_validation(spec, store, workers=workers, log=log, out=out, progress=progress)
    report = result.fit
    keys = {r.key() for r in expand(spec.sweep)}
    page = write_report(store, out / "report", validation=result, fit=report, sweep_keys=keys)
    return result, report, page


def report(
    store: str | Path = "runs.db",
    out: str | Path = "report",
    *,
    validation: Any = None,
    schedule_law: str | Path | None = None,
    target_params: float | None = None,
    target_tokens: float | None = None,
    target_width: int | None = None,
    target_depth: int | None = None,
    laws: str | Path | None = None,
) -> Path:
    """Write a self-contained HTML report (plots embedded) of the runs in ``store`` into the folder
    ``out``; ``validation``: a ``validation.json`` path or a :class:`~oasl.validate.ValidationResult` to
    include; ``schedule_law``: a file from ``oasl schedules fit`` to include. With ``target_tokens`` and
    ``target_params`` (non-embedding N) or a ``target_width``/``target_depth`` shape, the page opens on a
    recommendation card for that target (from ``laws``, a laws.json, or laws fitted on the store). Returns
    the page's path."""
    from oasl.errors import StoreError
    from oasl.report.html import write_report
    from oasl.validate import ValidationResult, load_validation

    if not Path(store).exists():
        raise StoreError(f"store {store} does not exist")
    val = validation
    if validation is not None and not isinstance(validation, ValidationResult):
        val = load_validation(validation)
    target = None
    if target_params is not None or target_tokens is not None or target_width is not None:
        from oasl.config import ModelShape, build
        from oasl.errors import ConfigError

        if target_tokens is None or (target_params is None and target_width is None):
            raise ConfigError(
                "give the target as --target-params and --target-tokens (or --target-width/--target-depth)"
            )
        shape = None
        if target_width is not None:
            if target_depth is None:
                raise ConfigError("give --target-depth with --target-width")
            shape = build(ModelShape, {"width": target_width, "depth": target_depth}, what="target shape")
        target = {"n_params": target_params, "tokens": target_tokens, "shape": shape, "laws": laws}
    return write_report(store, Path(out), validation=val, schedules=schedule_law, target=target)
