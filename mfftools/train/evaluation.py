"""Evaluation during training, through the same code as `mfftools extract` / `pair-eval` /
`inst-eval` / `ident-eval`: the network's embeddings of the validation data are written to an
embeddings file (in float32, with the run's input normalisation), evaluated, and the results JSON kept per epoch under RUN_DIR/eval/.

The validation data are opened and checked once, before the first training step (sources, the
instance target against the number of impostor pairs, the identification target against the
number of non-mated searches, the best-metric name against the metrics the evaluations will log),
so that a setting no evaluation could use never costs an epoch.

Under torchrun the main process extracts and evaluates the pairs; every process takes its share
of the instance protocol's tiles and of the 1:N searches (`shared_results`), the part whose cost
grows with the square of the number of images.
"""
import logging
from collections import namedtuple
from pathlib import Path

from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.files import write_results

logger = logging.getLogger(__name__)

PAIR_FILE = "pairs.h5"
INSTANCE_FILE = "instance.h5"
# How long the other processes wait for the main process to extract the validation data: a
# base, plus this much per image embedded (an image and its mirror with eval.flip), the pace of a
# slow extraction (an r100 on a CPU), so that the wait grows with the work.
WAIT_BASE_SECONDS = 30 * 60
WAIT_SECONDS_PER_IMAGE = 0.1

# A logged metric: its name, where the protocol's result holds it, and the factor that puts it in
# percent in the readable log (accuracies only; None: shown as it is).
Field = namedtuple("Field", "name path percent")

# The pair protocol's mean accuracy and std are x 100, as the paper prints them; group accuracies
# are fractions. The readable log shows every accuracy in percent, one unit for one kind of number.
_PAIR_KEYS = (("mean_accuracy", 1.0), ("std", 1.0), ("ser", None))
_PAIR_GROUP_KEYS = (("accuracy", 100.0), ("tar_at_far_1e-3", None))
_INSTANCE_KEYS = ("threshold", "tpr", "fpr")
_INSTANCE_STATISTICS = ("tpr_mean", "tpr_std", "fpr_mean", "fpr_std")
_INSTANCE_FAIRNESS = ("fdr", "fpd", "fnd", "garbe", "fmr_max_geomean", "fnmr_max_geomean")
_INSTANCE_GROUP_KEYS = ("tpr_mean", "fpr_mean")
_IDENT_KEYS = ("threshold", "fnir", "fpir")
_IDENT_FAIRNESS = ("fnir_max_geomean", "fpir_max_geomean")
_IDENT_GROUP_KEYS = ("fnir", "fpir")
# ident-eval's default CMC ranks, sorted: rank 1 comes first in each CMC list.
_IDENT_RANKS = (1, 5, 10, 20)


def pair_fields(group_names):
    """The logged pair-protocol metrics of a .bin folder with these groups."""
    fields = [Field(f"pair/{key}", (key,), percent) for key, percent in _PAIR_KEYS]
    for name in group_names:
        fields += [Field(f"pair/{name}/{key}", ("groups", name, key), percent)
                   for key, percent in _PAIR_GROUP_KEYS]
    return fields


def instance_fields(group_names):
    """The logged instance-protocol metrics (of its first target) of a zip with these groups."""
    entry = ("results", 0)
    fields = [Field(f"instance/{key}", entry + (key,), None) for key in _INSTANCE_KEYS]
    fields += [Field(f"instance/{key}", entry + ("instance", key), None) for key in _INSTANCE_STATISTICS]
    fields += [Field(f"instance/{key}", entry + ("fairness", key), None) for key in _INSTANCE_FAIRNESS]
    for name in group_names:
        fields += [Field(f"instance/{name}/{key}", entry + ("groups", name, key), None)
                   for key in _INSTANCE_GROUP_KEYS]
    return fields


def identification_fields(group_names):
    """The logged 1:N identification metrics (of its target, FNIR at rank 1) of a zip with these
    groups."""
    entry = ("results", 0)
    fields = [Field(f"ident/{key}", entry + (key,), None) for key in _IDENT_KEYS]
    fields.append(Field("ident/rank1", ("cmc", "all", 0), None))
    fields += [Field(f"ident/{key}", entry + ("fairness", key), None) for key in _IDENT_FAIRNESS]
    for name in group_names:
        fields += [Field(f"ident/{name}/{key}", entry + ("groups", name, key), None)
                   for key in _IDENT_GROUP_KEYS]
        fields.append(Field(f"ident/{name}/rank1", ("cmc", name, 0), None))
    return fields


def _metrics(result, fields):
    metrics = {}
    for field in fields:
        value = result
        for key in field.path:
            value = value[key]
        metrics[field.name] = value
    return metrics


def _open_source(key, path, want_folder):
    """The extraction source of one validation setting; errors name the setting."""
    from mfftools.sources import open_source

    path = Path(path)
    if not path.exists():
        raise MfftoolsError(f"config {key}: {path} does not exist")
    if path.is_dir() != want_folder:
        expected = "a folder of <Group>_test.bin files" if want_folder else "an RFW instance zip"
        raise MfftoolsError(f"config {key}: {path} is not {expected}")
    try:
        return open_source(path)
    except MfftoolsError as error:
        raise MfftoolsError(f"config {key}: {error}") from error


def _check_instance_target(eval_config, source):
    from mfftools.evaluation.identities import ordered_impostor_pairs
    from mfftools.evaluation.instance import check_targets

    n_impostor = ordered_impostor_pairs(source.identity)
    try:
        check_targets((eval_config.target_fpr,), n_impostor)
    except MfftoolsError as error:
        raise MfftoolsError(
            f"config eval.target_fpr with eval.instance_zip {eval_config.instance_zip}: {error} "
            f"(--set eval.target_fpr=...)"
        ) from error


def _check_identification_target(eval_config, source):
    from mfftools.evaluation.identification import check_targets, split_counts

    where = f"config eval.identification with eval.instance_zip {eval_config.instance_zip}"
    mated, nonmated = split_counts(source.identity, source.group)
    if not mated or not nonmated:
        raise MfftoolsError(
            f"{where}: split into a gallery, it leaves {mated} mated and {nonmated} non-mated "
            "searches; 1:N identification needs both (at least two identities per group, "
            "enrolled ones with two images or more)"
        )
    try:
        check_targets((eval_config.target_fpir,), nonmated)
    except MfftoolsError as error:
        raise MfftoolsError(
            f"config eval.target_fpir with eval.instance_zip {eval_config.instance_zip}: {error} "
            "(e.g. --set eval.target_fpir=0.1)"
        ) from error


class Validation:
    """The run's validation data, opened and checked at set-up (by the main process): `extract`
    writes the epoch's embeddings files, `results` evaluates and records them."""

    def __init__(self, eval_config, preprocessing):
        self.config = eval_config
        self.preprocessing = preprocessing
        self.pair_source = self.instance_source = None
        self.pair_fields, self.instance_fields, self.identification_fields = [], [], []
        if eval_config.pair_bin:
            self.pair_source = _open_source("eval.pair_bin", eval_config.pair_bin, want_folder=True)
            self.pair_fields = pair_fields(self.pair_source.group_names)
        if eval_config.instance_zip:
            self.instance_source = _open_source("eval.instance_zip", eval_config.instance_zip,
                                                want_folder=False)
            _check_instance_target(eval_config, self.instance_source)
            self.instance_fields = instance_fields(self.instance_source.group_names)
        if eval_config.identification:  # config.validate made sure of eval.instance_zip
            _check_identification_target(eval_config, self.instance_source)
            self.identification_fields = identification_fields(self.instance_source.group_names)
        self.metric_names = [field.name for field in
                             self.pair_fields + self.instance_fields + self.identification_fields]
        metric = eval_config.best_metric
        if metric and self.metric_names and metric not in self.metric_names:
            raise MfftoolsError(
                f"config eval.best_metric {metric!r} is not among the metrics this run's evaluations "
                f"log ({', '.join(self.metric_names)}); choose one of them, or \"\" for no best.pt"
            )

    @property
    def wait_seconds(self):
        """How long the other processes wait for `extract` (see WAIT_SECONDS_PER_IMAGE)."""
        sources = [source for source in (self.pair_source, self.instance_source) if source is not None]
        embedded = sum(len(source) for source in sources) * (2 if self.config.flip else 1)
        return WAIT_BASE_SECONDS + WAIT_SECONDS_PER_IMAGE * embedded

    def extract(self, network, out_dir, device, progress=False):
        """Write the network's embeddings of the validation data to `out_dir`, in float32.

        The extraction puts the network in eval mode and gives it back in the mode it was in.
        """
        config = self.config
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        options = dict(model=network, batch_size=config.batch_size, workers=0, device=device.type,
                       flip=config.flip, amp=False, preprocessing=self.preprocessing,
                       progress=progress)
        if self.pair_source is not None:
            _extract(self.pair_source, Path(out_dir) / PAIR_FILE, options)
        if self.instance_source is not None:
            _extract(self.instance_source, Path(out_dir) / INSTANCE_FILE, options)

    def results(self, out_dir, epoch, shared):
        """Evaluate the pairs and write every results file of the epoch; returns the flat
        metrics. `shared`: what `shared_results` returned."""
        out_dir = Path(out_dir)
        metrics = {}
        if self.pair_source is not None:
            from mfftools.evaluation.pair import evaluate_pairs

            result = evaluate_pairs(open_embeddings(out_dir / PAIR_FILE, layout="pairs"),
                                    allow_degenerate=True)
            write_results(result, out_dir / f"epoch_{epoch:04d}_pair.json")
            metrics.update(_metrics(result, self.pair_fields))
        instance, identification = shared
        if instance is not None:
            write_results(instance, out_dir / f"epoch_{epoch:04d}_instance.json")
            metrics.update(_metrics(instance, self.instance_fields))
        if identification is not None:
            write_results(identification, out_dir / f"epoch_{epoch:04d}_identification.json")
            metrics.update(_metrics(identification, self.identification_fields))
        return metrics

    def readable(self, metrics):
        """The metrics as the readable log shows them: accuracies (and their std) in percent with
        a % sign; rates, ratios and thresholds as they are."""
        percent = {field.name: field.percent for field in self.pair_fields if field.percent is not None}
        return {
            name: f"{value * percent[name]:.6g}%" if name in percent and value is not None else value
            for name, value in metrics.items()
        }


def shared_results(eval_config, out_dir, device, info):
    """(instance results, identification results) of the epoch's instance embeddings, each None
    when not asked for. Every process calls it: each scores its share of the instance protocol's
    tiles and of the 1:N searches, and each returns the same results."""
    if not eval_config.instance_zip:
        return None, None
    from mfftools.evaluation.identification import evaluate_identification
    from mfftools.evaluation.instance import evaluate_instance

    embeddings = open_embeddings(Path(out_dir) / INSTANCE_FILE, layout="images")
    # A model may pass through degenerate embeddings while it learns: warned, not fatal.
    instance = evaluate_instance(embeddings, targets=(eval_config.target_fpr,), device=device.type,
                                 progress=False, dist_info=info, allow_degenerate=True)
    identification = None
    if eval_config.identification:
        identification = evaluate_identification(
            embeddings, targets=(eval_config.target_fpir,), ranks=_IDENT_RANKS,
            device=device.type, progress=False, dist_info=info, allow_degenerate=True)
    return instance, identification


class BestTracker:
    """Which epoch scored best on the chosen metric (`best_mode` max or min).

    `state` is a checkpoint's record ({metric, mode, value, epoch}); a record of another metric or
    mode is dropped (its value says nothing of this one): the next evaluation becomes the best.
    """

    def __init__(self, metric, mode, state=None):
        self.metric = metric
        self.mode = mode
        self.value = self.epoch = None
        if state is None:
            return
        if (state.get("metric"), state.get("mode")) == (metric, mode):
            self.value, self.epoch = state.get("value"), state.get("epoch")
        else:
            logger.info("best.pt was chosen by %s (%s); this run chooses by %s (%s): the next "
                        "evaluation replaces it", state.get("metric"), state.get("mode"), metric, mode)

    def update(self, metrics, epoch):
        """True when `metrics` beat the best so far (and become the best). The metric's name was
        checked at set-up; an undefined value (null) never beats anything."""
        if not self.metric or metrics.get(self.metric) is None:
            return False
        value = float(metrics[self.metric])
        better = self.value is None or (value > self.value if self.mode == "max" else value < self.value)
        if better:
            self.value, self.epoch = value, epoch
        return better

    def state(self):
        return {"metric": self.metric, "mode": self.mode, "value": self.value, "epoch": self.epoch}


def _extract(source, out_path, options):
    """Extract `source` with the network into `out_path`, saying so in the run's log."""
    from mfftools.extract import run_extraction

    report = run_extraction(source, None, out_path, **options)
    logger.info("wrote %d embeddings to %s", report.rows, report.path)
