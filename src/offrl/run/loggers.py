"""Loggers behind one protocol: JSONL (always), TensorBoard, W&B and MLflow (optional)."""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys
from typing import Protocol


class Logger(Protocol):
    def log(self, step: int, metrics: dict[str, float]) -> None: ...

    def close(self) -> None: ...


def _clean(value):
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


class JsonlLogger:
    """Appends one JSON object per call to ``metrics.jsonl`` (flushed every line)."""

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def log(self, step: int, metrics: dict[str, float]) -> None:
        record = {"step": int(step)}
        for key, value in metrics.items():
            record[key] = value if isinstance(value, str | list) else _clean(value)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _parse_lines(path: pathlib.Path, warn: bool) -> list[tuple[str, dict]]:
    """``(line, record)`` for every readable record; a line that is not a JSON object
    with an integer ``step`` (one cut by a kill mid-write) is dropped with a warning."""
    out = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise ValueError("not a record with an integer 'step'")
        except ValueError as error:
            if warn:
                shown = line if len(line) <= 60 else line[:57] + "..."
                _warn(
                    f"{path}, line {number}: dropped an unreadable record ({error}): {shown!r} "
                    "(a write cut by a kill)"
                )
            continue
        out.append((line, record))
    return out


def truncate_jsonl(path: str | os.PathLike, last_step: int) -> list[dict]:
    """Drop records after ``last_step`` (used on resume, so no step is logged twice);
    an unreadable line is dropped with a warning. Returns every readable record as it
    was before the cut (the dropped ones included: their wall time counts)."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    parsed = _parse_lines(path, warn=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line, record in parsed if record["step"] <= last_step))
    os.replace(tmp, path)
    return [record for _, record in parsed]


def read_jsonl(path: str | os.PathLike, warn: bool = True) -> list[dict]:
    """Every readable record of a JSONL metrics file (unreadable lines warned about)."""
    return [record for _, record in _parse_lines(pathlib.Path(path), warn)]


class TensorBoardLogger:
    """TensorBoard event files through tensorboardX (``pip install offrl[tensorboard]``)."""

    def __init__(self, directory: str | os.PathLike):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as error:
            raise ImportError(
                "TensorBoard logging needs tensorboardX: pip install 'offrl[tensorboard]'"
            ) from error
        self._writer = SummaryWriter(str(directory))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            if isinstance(value, int | float) and _clean(value) is not None:
                self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class WandbLogger:
    """Weights & Biases (``pip install offrl[wandb]``); offline mode unless configured."""

    def __init__(self, project: str, name: str, config: dict, directory: str | os.PathLike):
        import wandb

        self._run = wandb.init(
            project=project,
            name=name,
            config=config,
            dir=str(directory),
            mode=os.environ.get("WANDB_MODE", "offline"),
        )

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self._run.log({k: v for k, v in metrics.items() if isinstance(v, int | float)}, step=step)

    def close(self) -> None:
        self._run.finish()


class MlflowLogger:
    """MLflow (``pip install offrl[mlflow]``); logs to the local tracking URI by default."""

    def __init__(self, experiment: str, name: str, config: dict):
        import mlflow

        self._mlflow = mlflow
        mlflow.set_experiment(experiment)
        self._run = mlflow.start_run(run_name=name)
        mlflow.log_params({k: str(v)[:250] for k, v in config.items()})

    def log(self, step: int, metrics: dict[str, float]) -> None:
        clean = {
            k.replace("/", "."): float(v)
            for k, v in metrics.items()
            if isinstance(v, int | float) and _clean(v) is not None
        }
        self._mlflow.log_metrics(clean, step=step)

    def close(self) -> None:
        self._mlflow.end_run()


class MultiLogger:
    def __init__(self, loggers: list[Logger]):
        self.loggers = loggers

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for logger in self.loggers:
            logger.log(step, metrics)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()
