"""Ready-made callbacks for ``pg.search(..., callbacks=[...])`` that log a search offline.

:class:`TensorBoard` writes TensorBoard event files with ``tensorboardX`` (about 3 MB with
``protobuf``, against some 55 MB for ``tensorboard`` itself, which is needed only to view
them): ``pip install 'propagate[tensorboard]'``, then ``tensorboard --logdir LOG_DIR``.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
from pathlib import Path
from typing import Any

from .engine.records import Record
from .errors import ConfigError

_HPARAM_TYPES = (bool, int, float, str)
_SERIAL = itertools.count()  # tells apart the files of this process's writers


class TensorBoard:
    """A callback writing each evaluation to TensorBoard event files under ``log_dir``.

    ``log_dir`` itself holds one scalar series per quantity over the evaluations, the step
    being the evaluation id: ``value`` (the optimized metric; failed ones are left out) and
    ``metrics/<name>`` for each returned metric. Each evaluation gets a run of its own,
    ``log_dir/eval-<id>``, with its learning curve (``curve``: the values it reported with
    ``trial.report``, over their steps) and its params as a session of the HParams dashboard
    (with ``value`` and its metrics as ``hparams/<name>``; an inactive param is left out,
    a value that is no number, string or bool is shown as text).

    The files are flushed after each evaluation, so TensorBoard shows a running search. The
    writer is made at the first evaluation: the callback may be built on every rank (as
    ``pg.search``'s arguments are) and only rank 0 writes.

    Args:
        log_dir: the directory to write into (made if missing).

    Raises:
        ConfigError: ``tensorboardX`` is not installed.
    """

    def __init__(self, log_dir: str | Path) -> None:
        if importlib.util.find_spec("tensorboardX") is None:
            raise ConfigError(
                "propagator.loggers.TensorBoard needs tensorboardX: "
                "pip install 'propagate[tensorboard]'"
            )
        self.log_dir = Path(log_dir)
        self._writer: Any = None

    def __call__(self, record: Record) -> None:
        """Write ``record``: its value and metrics, its curve and its params."""
        writer = self._main()
        if math.isfinite(record.value):
            writer.add_scalar("value", record.value, record.id)
        for name, value in _numbers(record.metrics).items():
            writer.add_scalar(f"metrics/{name}", value, record.id)
        writer.flush()
        self._write_run(record)

    def close(self) -> None:
        """Flush and close the event file (nothing to do if nothing was written)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> TensorBoard:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _main(self) -> Any:
        if self._writer is None:
            self._writer = _writer(self.log_dir)
        return self._writer

    def _write_run(self, record: Record) -> None:
        """The evaluation's own run: its curve and its HParams session."""
        from tensorboardX.summary import hparams

        metrics = {"value": record.value, **record.metrics}
        results = {f"hparams/{k}": v for k, v in _numbers(metrics).items()}
        params = {
            k: v if isinstance(v, _HPARAM_TYPES) else str(v) for k, v in record.params.items()
        }
        with _writer(self.log_dir / f"eval-{record.id:06d}") as run:
            for step, value in record.intermediate:
                if math.isfinite(value):
                    run.add_scalar("curve", value, step)
            for summary in hparams(params, results):  # the session: experiment, start, end
                run.file_writer.add_summary(summary)
            for tag, value in results.items():
                run.add_scalar(tag, value, record.id)


def _writer(log_dir: Path) -> Any:
    """A ``SummaryWriter`` into ``log_dir`` whose file no other writer has: tensorboardX names
    files by the second and host, and two writers of one second would write one file (a
    paused training's run gets a second writer when it is resumed)."""
    from tensorboardX import SummaryWriter

    return SummaryWriter(str(log_dir), filename_suffix=f".{os.getpid()}.{next(_SERIAL)}")


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numeric values of ``metrics`` (NaN, inf, strings and lists are left out)."""
    out = {}
    for name, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out
