"""Evaluation during training, through the same code as `mfftools extract` / `pair-eval` /
`inst-eval`: the network's embeddings of the validation data are written to an embeddings file,
evaluated, and the results JSON kept per epoch under RUN_DIR/eval/.
"""
import logging
from pathlib import Path

from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.files import write_results

logger = logging.getLogger(__name__)


def check_sources(eval_config):
    """Fail before training starts when a configured validation source does not exist."""
    for key, value in (("eval.pair_bin", eval_config.pair_bin), ("eval.instance_zip", eval_config.instance_zip)):
        if value and not Path(value).exists():
            raise MfftoolsError(f"config {key}: {value} does not exist")


def pair_metrics(result):
    """Flat metric names of a pair-protocol result: pair/mean_accuracy, pair/<group>/accuracy, ..."""
    metrics = {"pair/mean_accuracy": result["mean_accuracy"], "pair/std": result["std"], "pair/ser": result["ser"]}
    for name, entry in result["groups"].items():
        metrics[f"pair/{name}/accuracy"] = entry["accuracy"]
        metrics[f"pair/{name}/tar_at_far_1e-3"] = entry["tar_at_far_1e-3"]
    return metrics


def instance_metrics(result):
    """Flat metric names of an instance-protocol result (its first target)."""
    entry = result["results"][0]
    metrics = {f"instance/{key}": entry[key] for key in ("threshold", "tpr", "fpr")}
    metrics.update({f"instance/{key}": value for key, value in entry["instance"].items()})
    metrics.update({f"instance/{key}": value for key, value in entry["fairness"].items()})
    for name, group in entry["groups"].items():
        metrics[f"instance/{name}/tpr_mean"] = group["tpr_mean"]
        metrics[f"instance/{name}/fpr_mean"] = group["fpr_mean"]
    return metrics


def evaluate_network(network, eval_config, out_dir, epoch, device, amp=False):
    """Extract and evaluate the configured validation data; returns the flat metrics.

    The network is put in eval mode for the extraction and back in train mode after.
    """
    from mfftools.extract import extract  # the extraction module imports the data readers

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = {}
    network.eval()
    try:
        common = dict(
            model=network, batch_size=eval_config.batch_size, workers=0,
            device=device.type, flip=eval_config.flip, amp=amp,
        )
        if eval_config.pair_bin:
            from mfftools.evaluation.pair import evaluate_pairs

            path = extract(eval_config.pair_bin, None, out_dir / "pairs.h5", **common)
            result = evaluate_pairs(open_embeddings(path, layout="pairs"))
            write_results(result, out_dir / f"epoch_{epoch:04d}_pair.json")
            metrics.update(pair_metrics(result))
        if eval_config.instance_zip:
            from mfftools.evaluation.instance import evaluate_instance

            path = extract(eval_config.instance_zip, None, out_dir / "instance.h5", **common)
            result = evaluate_instance(
                open_embeddings(path, layout="images"), targets=(eval_config.target_fpr,),
                device=device.type, progress=False,
            )
            write_results(result, out_dir / f"epoch_{epoch:04d}_instance.json")
            metrics.update(instance_metrics(result))
    finally:
        network.train()
    return metrics


class BestTracker:
    """Which epoch scored best on the chosen metric (`best_mode` max or min)."""

    def __init__(self, metric, mode, state=None):
        self.metric = metric
        self.mode = mode
        self.value = None if state is None else state.get("value")
        self.epoch = None if state is None else state.get("epoch")

    def update(self, metrics, epoch):
        """True when `metrics` beat the best so far (and become the best)."""
        if not self.metric:
            return False
        if self.metric not in metrics:
            known = ", ".join(sorted(metrics))
            raise MfftoolsError(f"config eval.best_metric {self.metric!r} is not among the evaluated metrics: {known}")
        value = float(metrics[self.metric])
        better = self.value is None or (value > self.value if self.mode == "max" else value < self.value)
        if better:
            self.value, self.epoch = value, epoch
        return better

    def state(self):
        return {"metric": self.metric, "mode": self.mode, "value": self.value, "epoch": self.epoch}
