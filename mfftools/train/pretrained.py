"""Initial weights from a face model one already has (`model.pretrained`).

The file is read as `mfftools extract` reads a checkpoint (mfftools.models.loading: weights
only, the architecture checked): an insightface backbone `.pth`, an mfftools checkpoint, or a
MixFairFace state_dict. Its network initialises the run's; its margin head, if it has one, is
left out, as the run's head is sized from the training data's identities.

    model.type iresnet   an IResNet file initialises the whole network
    model.type mixfair   an IResNet file initialises the MixFair trunk (`encoder`), and the
                         adapter `mid` starts afresh; a MixFair file initialises both
"""
import logging
from pathlib import Path

from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

_HEAD_PREFIX = "product."
_LISTED = 5
# The input (mean, std on [0, 1] pixels) of a network whose file records none: insightface's.
_DEFAULT_INPUT = ((0.5,) * 3, (0.5,) * 3)


def load_pretrained(network, model_config, preprocessing):
    """Load `model_config.pretrained` into `network` (built for `model_config`).

    Warns when the file's network was trained on other input than `preprocessing` feeds.
    Returns what checkpoints record of it: path, sha256, checkpoint_format, model.
    """
    from mfftools.models.loading import load_model

    path = Path(model_config.pretrained)
    where = f"config model.pretrained {path}"
    model, info = load_model(path)
    if info.arch != model_config.arch:
        raise MfftoolsError(f"{where} is an {info.arch} network, the run's model.arch is "
                            f"{model_config.arch}: set model.arch={info.arch}")
    if info.model_type == "mixfair" and model_config.type != "mixfair":
        raise MfftoolsError(f"{where} is a MixFair network (trunk and adapter): set "
                            "model.type=mixfair, or give an IResNet backbone")
    into_trunk = model_config.type == "mixfair" and info.model_type == "iresnet"
    target = network.encoder if into_trunk else network
    weights = {key: value for key, value in model.state_dict().items()
               if not key.startswith(_HEAD_PREFIX)}
    _check_fit(target, weights, where)
    target.load_state_dict(weights, strict=False)
    _warn_on_other_input(info, preprocessing, where)
    logger.info("initialised the %s from %s (%s, %s checkpoint)", "trunk" if into_trunk else "network",
                path, info.name, info.checkpoint_format)
    return {"path": str(path.resolve()), "sha256": info.sha256,
            "checkpoint_format": info.checkpoint_format, "model": info.name}


def _check_fit(target, weights, where):
    """An error listing the keys and shapes of `weights` that do not fit `target` (its head
    aside)."""
    expected = {key: value for key, value in target.state_dict().items()
                if not key.startswith(_HEAD_PREFIX)}
    problems = []
    for label, keys in (("missing", expected.keys() - weights.keys()),
                        ("unexpected", weights.keys() - expected.keys())):
        if keys:
            problems.append(f"{label} {_listed(keys)}")
    wrong = [f"{key} {list(weights[key].shape)} != {list(value.shape)}"
             for key, value in expected.items() if key in weights and weights[key].shape != value.shape]
    if wrong:
        problems.append(f"wrong shapes {_listed(wrong)}")
    if problems:
        raise MfftoolsError(f"{where}: its weights do not fit the run's network ({'; '.join(problems)})")


def _listed(items):
    items = sorted(items)
    more = f", and {len(items) - _LISTED} more" if len(items) > _LISTED else ""
    return ", ".join(items[:_LISTED]) + more


def _trained_input(info):
    """(mean, std) of the input the file's network was trained on, as the checkpoint loader
    reads it (the paper's [0, 1] for its checkpoints, what an mfftools checkpoint records)."""
    if info.input_mean is None:
        return _DEFAULT_INPUT
    return info.input_mean, info.input_std


def _warn_on_other_input(info, preprocessing, where):
    mean, std = _trained_input(info)
    if (tuple(map(float, mean)), tuple(map(float, std))) != (preprocessing.mean, preprocessing.std):
        logger.warning(
            "%s was trained on input (x - %s) / %s, this run feeds (x - %s) / %s "
            "(data.input_mean, data.input_std): set them to the file's unless the network is "
            "meant to learn a new input scale", where, _values(mean), _values(std),
            _values(preprocessing.mean), _values(preprocessing.std))


def _values(values):
    """One value when the channels agree, else the three."""
    values = [float(value) for value in values]
    return f"{values[0]:g}" if len(set(values)) == 1 else ",".join(f"{value:g}" for value in values)
