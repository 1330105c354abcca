"""The run's records: a JSON-lines metrics file, a readable log, TensorBoard when installed.

Only the main process writes, and only once the run's set-up has passed: the messages of the
set-up are held until then (`HeldMessages`), so that a run refused before its first step leaves
no file behind. `metrics.jsonl` holds one object per line,
{"kind": "train" | "epoch" | "eval", "epoch": int, "step": int, ...numbers}; `train.log` holds
the same numbers as text together with every log message of the run.
"""
import json
import logging
from pathlib import Path

import numpy as np

from mfftools.errors import MfftoolsError
from mfftools.files import write_text

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_metrics(run_dir):
    """The records of a run's metrics file, in order."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _tensorboard_writer(run_dir):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.debug("tensorboard is not installed: no event files")
        return None
    return SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))


class HeldMessages(logging.Handler):
    """While open, holds the messages of mfftools' loggers (INFO and above) in `records`."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def __enter__(self):
        logging.getLogger("mfftools").addHandler(self)
        return self

    def __exit__(self, *exc_info):
        logging.getLogger("mfftools").removeHandler(self)


class RunLog:
    """Writes the run's metrics (main process only; elsewhere every method does nothing).

    A new run (`resume_step` None) starts an empty metrics file; a resumed one keeps the records
    up to its checkpoint's step. train.log is appended to: it tells every attempt in the folder,
    each beginning with the log records `earlier` (those of its set-up).
    """

    def __init__(self, run_dir, enabled=True, resume_step=None, earlier=()):
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self._handler = None
        self._tensorboard = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._truncate(resume_step)
        self._metrics = open(self.run_dir / METRICS_FILE, "a", encoding="utf-8")
        self._handler = logging.FileHandler(self.run_dir / LOG_FILE, encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._handler.setLevel(logging.INFO)
        for record in earlier:
            self._handler.handle(record)
        logging.getLogger("mfftools").addHandler(self._handler)
        self._tensorboard = _tensorboard_writer(self.run_dir)

    def _truncate(self, step):
        """Drop records written after `step` (all of them when None): the run rewrites them."""
        records = [] if step is None else read_metrics(self.run_dir)
        kept = [record for record in records if record["step"] <= step]
        write_text(self.run_dir / METRICS_FILE, "".join(json.dumps(record) + "\n" for record in kept))

    def record(self, kind, epoch, step, values, shown=None):
        """One metrics record: JSON line, readable log line, TensorBoard scalars.

        shown: the values as the readable line writes them (e.g. with units), by default `values`.
        """
        if not self.enabled:
            return
        record = {"kind": kind, "epoch": epoch, "step": step, **values}
        self._metrics.write(json.dumps(record, default=_json_default) + "\n")
        self._metrics.flush()
        shown = values if shown is None else shown
        text = " ".join(f"{name}={format_value(value)}" for name, value in shown.items())
        args = (kind, epoch, step, text)
        if logger.isEnabledFor(logging.INFO):
            logger.info("%s: epoch %d, step %d: %s", *args)
        else:  # the readable log always gets the numbers, whatever the console's level
            self._to_file(logging.INFO, "%s: epoch %d, step %d: %s", args)
        if self._tensorboard is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)):
                    self._tensorboard.add_scalar(f"{kind}/{name}", value, step)

    def error(self, error):
        """Write the error that stopped the run to train.log only (the command line prints it);
        with its traceback unless it is a user error (MfftoolsError)."""
        if not self.enabled:
            return
        if isinstance(error, MfftoolsError):
            self._to_file(logging.ERROR, "run stopped: %s", (error,))
        else:
            self._to_file(logging.ERROR, "run stopped: %s: %s", (type(error).__name__, error),
                          (type(error), error, error.__traceback__))

    def _to_file(self, level, message, args, exc_info=None):
        self._handler.handle(logger.makeRecord(logger.name, level, __file__, 0, message, args, exc_info))

    def close(self):
        if not self.enabled:
            return
        self._metrics.close()
        logging.getLogger("mfftools").removeHandler(self._handler)
        self._handler.close()
        if self._tensorboard is not None:
            self._tensorboard.close()


def format_value(value):
    """A number as the readable log writes it (6 significant digits), anything else as text."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)
