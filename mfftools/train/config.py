"""Training configuration: dataclass defaults < a YAML file < `--set section.key=value` overrides.

The defaults are the paper's recipe (IResNet-34 + MixFair adapter with its CosFace margin, the
SGD schedule, float32) except the input scale: by default images are fed as insightface feeds
them, (x - 0.5) / 0.5, which `mfftools extract` and insightface's backbones assume, while the
paper fed [0, 1] pixels (configs/mixfair_r34_balancedface.yaml does). `configs/*.yaml` only state
what differs. The resolved configuration is written next to the run's outputs and into every
checkpoint. A key missing from a saved configuration (written by an older version) takes its
default, which is what that version did.
"""
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mfftools.errors import MfftoolsError
from mfftools.files import write_text
from mfftools.models.iresnet import ARCHS


@dataclass
class DataConfig:
    train: str = ""  # training zip (PROTOCOLS 1.1), manifest (.csv/.tsv) or folder tree
    image_root: str = ""  # a manifest's paths are relative to it ("": the manifest's folder)
    columns: str = ""  # a manifest's columns mapped to path, identity, group: "path=file,..."
    group_by: list = field(default_factory=list)  # a manifest's groups from these columns
    in_memory: bool = False  # read a training zip into memory, as the original code does
    workers: int = 4  # DataLoader worker processes per training process
    horizontal_flip: bool = True  # flip each training image with probability 0.5
    input_mean: float = 0.5  # the network's input: (pixels in [0, 1] - input_mean) / input_std
    input_std: float = 0.5


@dataclass
class ModelConfig:
    type: str = "mixfair"  # mixfair (IResNet trunk + `mid` adapter) or iresnet (plain backbone)
    arch: str = "r34"
    head: str = "mixfair"  # mixfair, cosface or arcface
    s: float = 64.0
    m: float = None  # null: the head's paper's margin (CosFace and MixFair 0.35, ArcFace 0.5)
    cifp: bool = True  # MixFair head only: add the CIFP false-positive margin
    pretrained: str = ""  # initial weights: an insightface backbone .pth or an mfftools checkpoint


@dataclass
class OptimConfig:
    epochs: int = 40
    batch_size: int = 128  # per process
    max_steps_per_epoch: int = 0  # stop each epoch after this many steps; 0: the whole epoch
    lr: float = 0.1
    backbone_lr_scale: float = 1.0  # the backbone learns at lr x this (0: it stays as loaded)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: list = field(default_factory=lambda: [8, 18, 30, 34])  # epochs, MultiStepLR
    gamma: float = 0.1


@dataclass
class EvalConfig:
    every: int = 1  # evaluate every this many epochs (and after the last); 0: never
    at_start: bool = False  # also evaluate the initial network (logged as epoch 0)
    pair_bin: str = ""  # folder of <Group>_test.bin files: pair protocol
    instance_zip: str = ""  # RFW instance zip: instance protocol
    target_fpr: float = 1e-5  # instance protocol target, bisection threshold
    identification: bool = False  # also 1:N identification on the instance embeddings
    target_fpir: float = 1e-2  # its target FPIR
    best_metric: str = "pair/mean_accuracy"  # a key of the logged eval metrics; "" keeps no best.pt
    best_mode: str = "max"  # max or min
    batch_size: int = 128
    flip: bool = True  # flip test-time augmentation


@dataclass
class TrainConfig:
    seed: int = 229
    device: str = "auto"  # auto, cpu or cuda
    amp: bool = False  # float16 autocast with loss scaling (CUDA only); the paper trained in float32
    log_every: int = 50  # steps between logged training losses
    keep_checkpoints: int = 2  # epoch checkpoints kept (the newest); best.pt is kept apart
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self):
        return dataclasses.asdict(self)

    def dump(self, path):
        """Write the config as YAML, atomically."""
        write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


RUN_CONFIG = "config.yaml"  # the resolved config, in the run folder

# Keys whose default is None (null): the type of the values they take otherwise.
_NULLABLE = {"model.m": float}
# Former key names, read as the current ones.
_RENAMED = {"data.train_zip": "data.train"}


def _fields(obj):
    return {f.name: f for f in dataclasses.fields(obj)}


def _yaml11_float(value):
    """YAML 1.1 reads `1e-3` (no dot) as a string; accept it where a float is expected."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _check_value(key, value, default):
    """`value` converted to the type of `default`, or an error naming `key`."""
    if key in _NULLABLE:
        if value is None:
            return None
        default = _NULLABLE[key]()
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        value = _yaml11_float(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, list):
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, str)
    if not ok:
        kind = type(default).__name__
        raise MfftoolsError(f"config key {key!r}: expected {kind}, got {value!r}")
    return value


def _current_names(values, prefix, source):
    """`values` with former key names replaced by the current ones."""
    renamed = {}
    for name, value in values.items():
        key = _RENAMED.get(prefix + str(name), prefix + str(name))
        current = key[len(prefix):]
        if current in renamed:
            raise MfftoolsError(f"{source}: {key!r} is given twice (once by its former name)")
        renamed[current] = value
    return renamed


def _apply(target, values, prefix, source):
    if not isinstance(values, dict):
        raise MfftoolsError(f"{source}: section {prefix.rstrip('.') or 'top level'} must be a mapping")
    fields = _fields(target)
    for name, value in _current_names(values, prefix, source).items():
        key = prefix + name
        if name not in fields:
            known = ", ".join(prefix + n for n in fields)
            raise MfftoolsError(f"{source}: unknown config key {key!r} (known: {known})")
        current = getattr(target, name)
        if dataclasses.is_dataclass(current):
            _apply(current, value, key + ".", source)
        else:
            setattr(target, name, _check_value(key, value, current))


def parse_override(text):
    """`section.key=value` -> {"section": {"key": value}}, the value read as YAML."""
    if "=" not in text:
        raise MfftoolsError(f"--set {text!r}: expected key=value, e.g. optim.lr=0.01")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise MfftoolsError(f"--set {text!r}: value is not valid YAML ({error})") from error
    nested = value
    for part in reversed(key.strip().split(".")):
        nested = {part: nested}
    return nested


def _read_yaml(path):
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise MfftoolsError(f"cannot read config {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise MfftoolsError(f"config {path} is not valid YAML: {error}") from error


def load_config(path=None, overrides=(), base=None):
    """The resolved configuration: defaults, then the YAML file `base` (a run's saved config, when
    resuming), then the YAML file at `path`, then `overrides`."""
    config = TrainConfig()
    for file in (base, path):
        if file is not None:
            _apply(config, _read_yaml(file), "", str(file))
    for text in overrides:
        _apply(config, parse_override(text), "", f"--set {text}")
    validate(config)
    return config


def run_config(run_dir, config_path=None, overrides=(), resume=None):
    """The configuration of a `mfftools train` run.

    A resumed run (`resume` given) starts from the values it ran with, RUN_DIR/config.yaml, and
    applies only what is given now: the file `config_path`, then `overrides`. A new run starts
    from the defaults and needs `config_path`.
    """
    saved = Path(run_dir) / RUN_CONFIG
    base = saved if resume is not None and saved.is_file() else None
    if base is None and config_path is None:
        missing = f": {saved} does not exist" if resume is not None else ""
        raise MfftoolsError(
            f"--config is required (it may be left out only with --resume on a run folder){missing}"
        )
    return load_config(config_path, overrides, base=base)


def config_from_dict(values, source="checkpoint config"):
    """A TrainConfig from the dict stored in a checkpoint; keys it lacks take their defaults."""
    config = TrainConfig()
    _apply(config, values, "", source)
    return config


def _input_scale_problem(key, value, interval, inside):
    """What is wrong with an input normalisation value (pixels are scaled to [0, 1]), or None."""
    if value > 1:
        return (f"{key} {value:g} reads as a 0-255 scale, but pixels are scaled to [0, 1] "
                f"before normalising: write {value / 255:.6g} ({value:g} / 255)")
    return None if inside else f"{key} must be within {interval} (got {value:g})"


def validate(config):
    """Errors for values no run could use, found before any data is read."""
    if not config.data.train:
        raise MfftoolsError("config: data.train is not set (the training zip, manifest or folder "
                            "tree to read)")
    data, model, optim = config.data, config.model, config.optim
    scale_problems = [
        _input_scale_problem("data.input_mean", data.input_mean, "[0, 1]", data.input_mean >= 0),
        _input_scale_problem("data.input_std", data.input_std, "(0, 1]", data.input_std > 0),
    ]
    checks = [(problem is None, problem) for problem in scale_problems]
    checks += [
        (all(isinstance(name, str) and name for name in data.group_by),
         "data.group_by must be a list of column names, e.g. [ethnicity, gender]"),
        (model.type in ("mixfair", "iresnet"), "model.type must be mixfair or iresnet"),
        (model.arch in ARCHS, f"model.arch must be one of {', '.join(ARCHS)} (got {model.arch!r})"),
        (model.head in ("mixfair", "cosface", "arcface"), "model.head must be mixfair, cosface or arcface"),
        (model.head != "mixfair" or model.type == "mixfair",
         "model.head mixfair needs model.type mixfair (it mixes trunk feature maps)"),
        (model.m is None or model.m >= 0, "model.m must be null (the head's default) or at least 0"),
        (optim.epochs >= 1, "optim.epochs must be at least 1"),
        (optim.batch_size >= 2, "optim.batch_size must be at least 2"),
        (optim.max_steps_per_epoch >= 0, "optim.max_steps_per_epoch must be 0 (no limit) or more"),
        (optim.backbone_lr_scale >= 0, "optim.backbone_lr_scale must be 0 (a frozen backbone) or more"),
        (config.eval.every >= 0, "eval.every must be 0 (never) or more"),
        (config.eval.best_mode in ("max", "min"), "eval.best_mode must be max or min"),
        (not config.eval.identification or config.eval.instance_zip,
         "eval.identification needs eval.instance_zip (1:N identification searches the "
         "instance embeddings)"),
        (config.log_every >= 1, "log_every must be at least 1"),
        (config.keep_checkpoints >= 1, "keep_checkpoints must be at least 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise MfftoolsError(f"config: {message}")
