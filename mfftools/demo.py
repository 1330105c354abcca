"""The whole pipeline on synthetic data: synthesise, train, extract, evaluate, report.

Every stage goes through the same functions as the commands (`synth`, `train`, `extract`,
`inst-eval`, `ident-eval`, `pair-eval`, `calibrate cross-val`, `report`), so the demo is also a
smoke test of the project. The
synthetic data make one group harder to recognise; the headline numbers compare the groups
and name the one with the lowest pair accuracy, in the words of the report's summary. The
calibration stage runs on synthetic embeddings with a planted bias (`synth --bias`), not on the
demo model's: it shows each mitigation method before and after on data where the bias is known.
"""
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mfftools.calibration.methods import Settings
from mfftools.calibration.pipeline import cross_validate
from mfftools.data.synthetic import BIASED_PAIRS, synthesize
from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.evaluation.identification import evaluate_identification, split_counts
from mfftools.evaluation.instance import evaluate_instance
from mfftools.evaluation.pair import evaluate_pairs
from mfftools.files import write_results
from mfftools.extract import extract
from mfftools.pair_data import read_pair_set
from mfftools.reporting.build import write_report
from mfftools.reporting.summary import hardest_pair_group
from mfftools.train.checkpoint import newest_checkpoint
from mfftools.train.config import load_config
from mfftools.train.trainer import CHECKPOINT_DIR, train

logger = logging.getLogger(__name__)

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo_tiny.yaml"
MODEL_NAME = "demo_tiny"
# Marks a folder as written by the demo, so that a rerun may replace what it wrote there.
MARKER = ".mfftools-demo"
SUBFOLDERS = ("data", "train", "embeddings", "results", "report")
# The smallest target FPR of these that leaves at least MIN_ACCEPTED impostor pairs accepted:
# a target below one accepted pair cannot be resolved.
TARGET_FPRS = (1e-5, 1e-4, 1e-3, 1e-2)
MIN_ACCEPTED = 50
# Likewise for 1:N identification: the smallest target FPIR of these that leaves at least
# MIN_FALSE_POSITIVES non-mated searches above the threshold.
TARGET_FPIRS = (1e-3, 1e-2, 1e-1)
MIN_FALSE_POSITIVES = 5
# The calibration stage: synthetic embeddings whose first subgroup is this much closer, every
# method cross-validated over their 5 folds, with k-means clusters sized for their 2,880 images.
CALIBRATION_BIAS = 0.2
CALIBRATION_METHODS = ("baseline", "faircal", "fsn", "gst", "oracle", "group-norm")
CALIBRATION_SETTINGS = Settings(clusters=20)


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of one demo run: synthetic data, training overrides, bootstrap resamples."""

    synth: dict
    train_overrides: tuple
    bootstrap: int


# Sized for 2 CPU cores, where demo_tiny's r10-mini trunk trains at about 75 images/s and embeds
# about 70 images/s with flip TTA: training (3 of the full run's 4 minutes) dominates. The full run trains the
# config's recipe on the synthetic defaults (1,600 training images); the quick one trains a
# smaller set for fewer steps, enough to rise clearly above chance but with noisier group numbers.
FULL = DemoPlan(synth={}, train_overrides=(), bootstrap=1000)
QUICK = DemoPlan(
    synth={"identities_per_group": 16, "images_per_identity": 3, "max_images_per_identity": 6,
           "pairs_per_group": 200, "train_identities_per_group": 20},
    train_overrides=("optim.epochs=5", "optim.milestones=[4]"),
    bootstrap=200,
)


@dataclass
class DemoResult:
    """Where everything went and the headline numbers."""

    out_dir: Path
    report_html: Path
    report_markdown: Path
    result_files: list
    pair: dict  # the pair protocol's results
    instance: dict  # the instance protocol's results
    identification: dict  # the 1:N identification results
    calibration: dict  # calibrate cross-val on the biased synthetic embeddings
    seconds: dict = field(default_factory=dict)  # per stage

    def hardest_group(self):
        """The group with the lowest pair accuracy (ties named), its accuracy and its gap to the
        best, as the report's summary states it (one definition: `hardest_pair_group`)."""
        return hardest_pair_group(self.pair["groups"]) or "one group only"

    def headline(self):
        """One row per group: (name, pair accuracy %, instance TPR mean, instance FPR mean, 1:N
        FNIR)."""
        entry = self.instance["results"][0]
        searches = self.identification["results"][0]
        rows = []
        for name in self.pair["group_names"]:
            group = entry["groups"].get(name, {})
            rows.append((name, 100 * self.pair["groups"][name]["accuracy"],
                         group.get("tpr_mean"), group.get("fpr_mean"),
                         searches["groups"].get(name, {}).get("fnir")))
        return rows


def run_demo(out_dir="demo_out", quick=False, device="auto", workers=1, progress=True,
             on_stage=None):
    """Run every stage into `out_dir`; returns a DemoResult.

    on_stage(number, total, text) is called as each stage starts, so a caller can show progress
    (the library itself never prints). `out_dir` must be empty, absent, or a previous demo's.
    """
    plan = QUICK if quick else FULL
    out_dir = Path(out_dir)
    _prepare(out_dir)
    stages = _Stages(on_stage, total=8)
    data_dir, train_dir = out_dir / "data", out_dir / "train"
    embeddings_dir, results_dir = out_dir / "embeddings", out_dir / "results"

    with stages.run("synthesise data", data_dir):
        synthesize(data_dir, seed=0, bias=CALIBRATION_BIAS, **plan.synth)
    with stages.run("train demo_tiny", train_dir):
        checkpoint = _train(data_dir, train_dir, plan, device, progress)
    with stages.run("extract embeddings", embeddings_dir):
        common = dict(device=device, workers=workers, batch_size=64, progress=progress)
        instance_h5 = extract(data_dir / "ValInstData.zip", checkpoint,
                              embeddings_dir / "instance.h5", **common)
        pairs_h5 = extract(data_dir / "rfw_bin", checkpoint, embeddings_dir / "pairs.h5", **common)
    with stages.run("instance protocol (inst-eval)", results_dir / "instance.json"):
        shown = progress and sys.stderr.isatty()
        instance = _evaluate_instance(instance_h5, device, shown)
        instance_json = write_results(instance, results_dir / "instance.json")
    with stages.run("1:N identification (ident-eval)", results_dir / "identification.json"):
        identification = _evaluate_identification(instance_h5, device, shown)
        identification_json = write_results(identification, results_dir / "identification.json")
    with stages.run("pair protocol (pair-eval)", results_dir / "pair.json"):
        pair = evaluate_pairs(open_embeddings(pairs_h5, layout="pairs"))
        pair["model"] = MODEL_NAME
        pair_json = write_results(pair, results_dir / "pair.json")
    with stages.run("calibration (calibrate cross-val)", results_dir / "calibration.json"):
        calibration = _calibrate(data_dir / BIASED_PAIRS)
        calibration_json = write_results(calibration, results_dir / "calibration.json")
    result_files = [instance_json, identification_json, pair_json, calibration_json]
    with stages.run("report", out_dir / "report"):
        report = write_report(result_files, out_dir / "report", bootstrap=plan.bootstrap, seed=0,
                              title="mfftools demo")
    return DemoResult(out_dir=out_dir, report_html=report.html, report_markdown=report.markdown,
                      result_files=result_files, pair=pair, instance=instance,
                      identification=identification, calibration=calibration,
                      seconds=stages.seconds)


def _prepare(out_dir):
    """Make `out_dir` ready: create it, or clear what a previous demo wrote there."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise MfftoolsError(f"{out_dir} exists and is not a folder")
        if (out_dir / MARKER).exists():
            for name in SUBFOLDERS:
                shutil.rmtree(out_dir / name, ignore_errors=True)
        elif any(out_dir.iterdir()):
            raise MfftoolsError(
                f"{out_dir} is not empty and was not written by the demo: choose another --out"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).write_text("written by `mfftools demo`; a rerun replaces this folder's "
                                  + ", ".join(SUBFOLDERS) + "\n")


def train_config(data_dir, plan, device):
    """The training config of a demo run: demo_tiny with the plan's overrides."""
    if not DEMO_CONFIG.is_file():
        raise MfftoolsError(f"{DEMO_CONFIG} is missing: the demo runs from a checkout of mfftools")
    overrides = (f"data.train={data_dir / 'TrainingData.zip'}", f"device={device}",
                 "eval.every=0") + plan.train_overrides
    return load_config(DEMO_CONFIG, overrides)


def _train(data_dir, train_dir, plan, device, progress):
    """Train demo_tiny on the synthetic training zip; returns the final checkpoint's path."""
    config = train_config(data_dir, plan, device)
    summary = train(config, train_dir, resume=None, progress=progress)
    logger.info("trained %d epochs (%d steps), last loss %.4f",
                summary["epochs"], summary["step"], summary["loss"])
    return newest_checkpoint(train_dir / CHECKPOINT_DIR)


def _evaluate_instance(path, device, progress):
    embeddings = open_embeddings(path, layout="images")
    target = choose_target_fpr(embeddings.identity)
    logger.info("instance protocol at target FPR %g", target)
    result = evaluate_instance(embeddings, targets=(target,), methods=("bisection",),
                               device=device, progress=progress, det=True)
    result["model"] = MODEL_NAME
    result["source"] = str(Path(path).absolute())  # the report's gallery finds the faces by it
    return result


def _evaluate_identification(path, device, progress):
    embeddings = open_embeddings(path, layout="images")
    target = choose_target_fpir(embeddings.identity, embeddings.group)
    logger.info("1:N identification at target FPIR %g", target)
    result = evaluate_identification(embeddings, targets=(target,), device=device,
                                     progress=progress)
    result["model"] = MODEL_NAME
    result["source"] = str(Path(path).absolute())
    return result


def _calibrate(path):
    result = cross_validate(read_pair_set(open_embeddings(path)), CALIBRATION_METHODS,
                            CALIBRATION_SETTINGS)
    result["model"] = f"synthetic, bias {CALIBRATION_BIAS:g}"
    return result


def choose_target_fpir(identity, group):
    """The smallest target of TARGET_FPIRS at which the file's non-mated searches (split by
    ident-eval's rule) leave at least MIN_FALSE_POSITIVES above the threshold."""
    _, nonmated = split_counts(np.asarray(identity), np.asarray(group))
    for target in TARGET_FPIRS:
        if target * nonmated >= MIN_FALSE_POSITIVES:
            return target
    raise MfftoolsError(f"too few non-mated searches ({nonmated}) for the demo's 1:N "
                        "identification")


def choose_target_fpr(identity):
    """The smallest target of TARGET_FPRS that at least MIN_ACCEPTED impostor pairs can meet."""
    _, sizes = np.unique(np.asarray(identity), return_counts=True)
    n = int(sizes.sum())
    impostor_pairs = n * n - int((sizes.astype(np.int64) ** 2).sum())  # ordered pairs
    for target in TARGET_FPRS:
        if target * impostor_pairs >= MIN_ACCEPTED:
            return target
    raise MfftoolsError(f"too few images ({n}) for the instance protocol's demo")


class _Stages:
    """Announces each stage through the caller's callback and times it."""

    def __init__(self, on_stage, total):
        self.on_stage = on_stage
        self.total = total
        self.number = 0
        self.seconds = {}

    def run(self, text, where):
        self.number += 1
        if self.on_stage is not None:
            self.on_stage(self.number, self.total, f"{text} -> {where}")
        logger.debug("[%d/%d] %s", self.number, self.total, text)
        return _Timer(self.seconds, text)


class _Timer:
    def __init__(self, seconds, text):
        self.seconds = seconds
        self.text = text

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.seconds[self.text] = time.perf_counter() - self.start
        return False
