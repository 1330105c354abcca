"""Options shared by the commands that extract embeddings (`extract`, `pair-eval`): the model,
how images become its input, and how a manifest or pair list is read."""
from pathlib import Path

import click

# The names of mfftools.models.iresnet.ARCHS, without importing torch for --help.
ARCHS = ("r10-mini", "r18", "r34", "r50", "r100", "r200")


def _size(ctx, param, value):
    """`112` -> (112, 112); `112x96` -> (112, 96) as height x width."""
    if value is None:
        return None
    parts = value.lower().split("x")
    try:
        size = tuple(int(part) for part in parts)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not N or HxW, e.g. 112 or 112x96") from None
    if len(size) not in (1, 2) or min(size) < 1:
        raise click.BadParameter(f"{value!r} is not N or HxW, e.g. 112 or 112x96")
    return size * 2 if len(size) == 1 else size


def _per_channel(ctx, param, value):
    """`0.5` -> (0.5, 0.5, 0.5); `0.485,0.456,0.406` -> those three; None stays None."""
    if value is None:
        return None
    try:
        values = tuple(float(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not one number or three, comma-separated") from None
    if len(values) not in (1, 3):
        raise click.BadParameter(f"{value!r} is not one number or three, comma-separated")
    return values * 3 if len(values) == 1 else values


def name_list(ctx, param, value):
    """A click callback: `a, b` -> ("a", "b"); None stays None."""
    if value is None:
        return None
    return tuple(name.strip() for name in value.split(",") if name.strip())


def model_options(required):
    """--model and how it runs: --arch, --output, --input-size/-mean/-std, --bgr, --batch-size,
    --workers, --device, --no-flip, --amp."""
    options = [
        click.option("--model", "model_path", required=required,
                     type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="The face model: a PyTorch checkpoint (ours, an insightface "
                     "backbone.pth, a MixFairFace state_dict), a TorchScript archive, or an "
                     "ONNX model."),
        click.option("--arch", type=click.Choice(ARCHS),
                     help="A checkpoint's IResNet depth; inferred from its weights when not "
                     "given."),
        click.option("--output", "output_name", metavar="NAME",
                     help="The output holding the embedding, for an ONNX model with several."),
        click.option("--input-size", callback=_size, metavar="N|HxW",
                     help="The model's input size; images are resized to it (default: the "
                     "size the model declares, else 112)."),
        click.option("--input-mean", callback=_per_channel, metavar="M|R,G,B",
                     help="Mean subtracted from [0, 1] pixels, per channel in the model's "
                     "channel order (values above 1 are read on the 0-255 scale, e.g. 127.5); "
                     "default: what the checkpoint records, 0 for the paper's MixFairFace "
                     "checkpoints, else 0.5."),
        click.option("--input-std", callback=_per_channel, metavar="S|R,G,B",
                     help="Standard deviation the pixels are divided by (the same scale rule); "
                     "default: what the checkpoint records, 1 for the paper's checkpoints, "
                     "else 0.5."),
        click.option("--bgr", is_flag=True, help="Give the model BGR channels instead of RGB."),
        click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=1)),
        click.option("--workers", default=2, show_default=True, type=click.IntRange(min=0),
                     help="Image-decoding worker processes."),
        click.option("--device", default="auto", show_default=True,
                     type=click.Choice(["auto", "cpu", "cuda"]),
                     help="Where the model runs (an ONNX model: onnxruntime's CUDA provider "
                     "when there is one)."),
        click.option("--no-flip", is_flag=True,
                     help="Embed the images only, without adding the embedding of their "
                     "mirror image."),
        click.option("--fp16", "--amp", "amp", is_flag=True,
                     help="Float16 autocast (PyTorch models on CUDA); embeddings are stored "
                     "as float32."),
    ]
    return _stacked(options)


def source_options(group_by):
    """--image-root, --columns, --attributes, and --group-by when `group_by`."""
    options = [
        click.option("--image-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
                     help="Folder the paths of a manifest or pair list are relative to "
                     "(default: the list's own folder)."),
        click.option("--columns", metavar="NAME=COLUMN,...",
                     help="Map a manifest's or pair list's columns to the standard names, e.g. "
                     "path1=p1,path2=p2,issame=label,group=a1 (BFW's pair table)."),
        click.option("--attributes", type=click.Path(exists=True, dir_okay=False,
                                                     path_type=Path),
                     help="Per-identity attributes (.csv/.tsv: identity, then attribute "
                     "columns), joined to the source by identity name; --group-by names its "
                     "columns (default: its group column)."),
    ]
    if group_by:
        options.append(click.option(
            "--group-by", callback=name_list, metavar="COLUMN,...",
            help="Make groups from these columns' values, joined by '-' (e.g. ethnicity,gender "
            "gives Asian-Female): a manifest's, the --attributes file's, or a pair list's "
            "per-image COLUMN1 and COLUMN2 (a pair is in a group when both images are)."))
    return _stacked(options)


def _stacked(options):
    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def preprocessing(input_size, input_mean, input_std, bgr):
    """The Preprocessing the options describe (None: the model's own)."""
    from mfftools.data.images import Preprocessing

    return Preprocessing.given(size=input_size, mean=input_mean, std=input_std, bgr=bgr)


def source_settings(image_root, columns, group_by=None, groups=None, attributes=None):
    """The SourceOptions the options describe."""
    from mfftools.data.table import parse_column_map
    from mfftools.sources import SourceOptions

    return SourceOptions(image_root=image_root, group_by=group_by,
                         columns=parse_column_map(columns), groups=groups,
                         attributes=attributes)

