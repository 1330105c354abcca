"""Fine-tuning from a model one already has (`model.pretrained`), on a folder tree."""
import logging

import pytest
import torch
from torch.utils.data import DistributedSampler

from mfftools.errors import MfftoolsError
from mfftools.models.iresnet import iresnet
from mfftools.models.loading import file_sha256
from mfftools.train import step, trainer
from mfftools.train.checkpoint import epoch_checkpoints, load_checkpoint
from mfftools.train.data import open_training_data, training_preprocessing
from mfftools.train.metrics import read_metrics

from trainer_fixtures import small_config, write_folder_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_folder_tree(tmp_path_factory.mktemp("tree") / "faces", n_classes=4, per_class=6)


@pytest.fixture(scope="module")
def insightface_backbone(tmp_path_factory):
    """An insightface-style backbone.pth: a bare IResNet state_dict, other weights than a run's."""
    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("models") / "backbone.pth"
    torch.save(iresnet("r10-mini").state_dict(), path)
    return path


def _config(tree, **changes):
    # 24 images, batch 8: 3 steps per epoch; the real MixFair network at its smallest width.
    config = small_config(tree, **{"optim__epochs": 2, "optim__milestones": [1], **changes})
    config.model.arch = "r10-mini"
    return config


def _first_step_loss(config, load):
    """The loss of the run's first step, computed by hand: the same initial weights, `load`
    applied to the network, the sampler's first batch, its flips, partners and dropout."""
    data = open_training_data(config.data, training_preprocessing(config.data))
    torch.manual_seed(config.seed)
    network, head = step.build_network(config.model, data.num_classes)
    load(network)
    module = step.TrainingModule(network, head).train()
    sampler = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=config.seed,
                                 drop_last=True)
    sampler.set_epoch(0)
    batch = [data[index] for index in list(sampler)[: config.optim.batch_size]]
    images = torch.stack([image for image, _, _ in batch])
    labels = torch.tensor([label for _, label, _ in batch])
    randomness = step.BatchRandomness(config.seed, 0, 0, config.data.horizontal_flip)
    images = randomness.apply_flip(images)
    permutation = randomness.permutation(len(labels), "cpu")
    torch.manual_seed(step.stream_seed(config.seed, 0, 0, step.DROPOUT_STREAM))
    return float(module(images, labels, permutation).detach())


def _first_logged_loss(run):
    return next(record["loss"] for record in read_metrics(run) if record["kind"] == "train")


def _losses(run):
    return [(r["kind"], r["epoch"], r["step"], r["loss"], r["lr"]) for r in read_metrics(run)]


def _weights(run):
    return load_checkpoint(epoch_checkpoints(run / "checkpoints")[-1])


def test_an_insightface_backbone_initialises_the_trunk_and_resume_repeats_the_run(
        tree, insightface_backbone, tmp_path):
    config = _config(tree, model__pretrained=str(insightface_backbone))
    trainer.train(config, tmp_path / "straight", progress=False)

    def manual_load(network):
        network.encoder.load_state_dict(torch.load(insightface_backbone, weights_only=True))

    loaded = _first_step_loss(config, manual_load)
    assert _first_logged_loss(tmp_path / "straight") == pytest.approx(loaded, rel=1e-6)
    # ... and that loss is not the one of the run's own initial weights.
    assert _first_step_loss(config, lambda network: None) != pytest.approx(loaded, rel=1e-3)
    state = _weights(tmp_path / "straight")
    assert state["pretrained"] == {"path": str(insightface_backbone.resolve()),
                                   "sha256": file_sha256(insightface_backbone),
                                   "checkpoint_format": "insightface", "model": "iresnet-r10-mini"}
    assert state["head"]["weight"].shape == (4, 512)

    # One epoch, then resume: the pretrained file is not needed any more, and the weights are
    # those of the uninterrupted run, bit for bit.
    first = _config(tree, model__pretrained=str(insightface_backbone), optim__epochs=1)
    trainer.train(first, tmp_path / "resumed", progress=False)
    gone = tmp_path / "moved-away.pth"
    trainer.train(_config(tree, model__pretrained=str(gone)), tmp_path / "resumed", resume="auto",
                  progress=False)
    resumed = _weights(tmp_path / "resumed")
    assert resumed["pretrained"] == state["pretrained"]
    for key, value in state["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    assert _losses(tmp_path / "resumed") == _losses(tmp_path / "straight")


def test_an_mfftools_checkpoint_initialises_the_network_and_the_head_fits_the_data(
        tree, insightface_backbone, tmp_path, caplog):
    source = _config(tree, optim__epochs=1, model__pretrained=str(insightface_backbone))
    trainer.train(source, tmp_path / "source", progress=False)
    checkpoint = epoch_checkpoints(tmp_path / "source" / "checkpoints")[-1]
    before = load_checkpoint(checkpoint)["model"]

    # Five identities now, the backbone frozen (lr x 0), the [0, 1] input of the paper.
    five = write_folder_tree(tmp_path / "five", n_classes=5, per_class=4, seed=1)
    config = _config(five, optim__epochs=1, model__pretrained=str(checkpoint))
    config.optim.backbone_lr_scale = 0.0
    config.data.input_mean, config.data.input_std = 0.0, 1.0
    with caplog.at_level(logging.WARNING, logger="mfftools"):
        trainer.train(config, tmp_path / "tuned", progress=False)
    assert (f"config model.pretrained {checkpoint} was trained on input (x - 0.5) / 0.5, this run "
            "feeds (x - 0) / 1") in caplog.text
    state = _weights(tmp_path / "tuned")
    assert state["head"]["weight"].shape == (5, 512)
    assert state["preprocessing"] == {"input_size": [112, 112], "input_mean": [0.0] * 3,
                                      "input_std": [1.0] * 3, "channel_order": "RGB"}
    assert state["pretrained"]["checkpoint_format"] == "mfftools"
    trainable = {name for name, parameter in step.build_network(config.model, 5)[0].named_parameters()
                 if parameter.requires_grad}
    for name in trainable:
        if name.startswith("encoder."):  # the backbone: as loaded
            assert torch.equal(state["model"][name], before[name]), name
    # The adapter trained at the full learning rate.
    assert not torch.equal(state["model"]["mid.2.weight"], before["mid.2.weight"])


def test_a_pretrained_file_that_does_not_fit_is_refused_before_anything_is_written(
        tree, insightface_backbone, tmp_path):
    cases = [
        (dict(model__pretrained=str(insightface_backbone)), {"arch": "r18"},
         f"config model.pretrained {insightface_backbone} is an r10-mini network, the run's "
         "model.arch is r18: set model.arch=r10-mini"),
    ]
    mixfair = tmp_path / "mixfair.pt"
    torch.manual_seed(0)
    network, _ = step.build_network(_config(tree).model, 3)
    torch.save({key: value for key, value in network.state_dict().items()
                if not key.startswith("product.")}, mixfair)
    cases.append((dict(model__pretrained=str(mixfair)), {"type": "iresnet", "head": "cosface"},
                  f"config model.pretrained {mixfair} is a MixFair network (trunk and adapter): set "
                  "model.type=mixfair, or give an IResNet backbone"))
    for number, (changes, model, message) in enumerate(cases):
        config = _config(tree, **changes)
        for key, value in model.items():
            setattr(config.model, key, value)
        with pytest.raises(MfftoolsError) as caught:
            trainer.train(config, tmp_path / f"run{number}", progress=False)
        assert str(caught.value) == message
        assert not (tmp_path / f"run{number}").exists()


def test_an_insightface_backbone_initialises_a_plain_iresnet_whole(tree, insightface_backbone, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mfftools")
    config = _config(tree, optim__epochs=1, model__pretrained=str(insightface_backbone))
    config.model.type, config.model.head = "iresnet", "arcface"
    config.optim.backbone_lr_scale = 0.0
    trainer.train(config, tmp_path / "run", progress=False)
    assert "arcface head, s=64, m=0.5" in caplog.text  # ArcFace's own margin by default
    loaded = torch.load(insightface_backbone, weights_only=True)
    state = _weights(tmp_path / "run")
    network = iresnet("r10-mini")
    for name, parameter in network.named_parameters():
        if parameter.requires_grad:  # the whole network is the backbone: as loaded
            assert torch.equal(state["model"][name], loaded[name]), name
    assert state["head"]["weight"].shape == (4, 512)
    assert not torch.equal(state["model"]["bn1.running_mean"], loaded["bn1.running_mean"])  # it ran
