"""Whether the models a report compares were evaluated on the same images.

Each results file records what it was computed on (`images`): the number of images (or pairs)
and sha256 digests of the sorted image paths and identity names (of the pairs' labels, for the
pair protocol). Within each protocol the report compares these across models and records what it
compared: a digest that two files give and that differs means different data (a loud warning);
one that some file lacks cannot be compared. Models are compared with each other (side by side,
and by paired tests over identities) only where the images are the same.
"""
from dataclasses import dataclass

import numpy as np

from mfftools.reporting.results import images_of

SAME, DIFFERENT, UNKNOWN = "same", "different", "unknown"
# What each protocol's `images` records, in the order the report names them.
KEYS = {
    "instance": ("n", "paths_sha256", "identities_sha256"),
    "identification": ("n", "paths_sha256", "identities_sha256"),
    "pair": ("n", "labels_sha256"),
}
DESCRIPTIONS = {"n": "the number of images", "paths_sha256": "the image paths (sha256)",
                "identities_sha256": "the identity names (sha256)",
                "labels_sha256": "the pairs' labels and groups (sha256)"}
PAIR_COUNT = "the number of pairs"


@dataclass(frozen=True)
class ImagesCheck:
    """The verdict on one protocol's results: `compared` (what every file records, compared),
    `not_compared` (what some file lacks), `differences` (what differs, with each model's
    value), and `message` (one sentence for the report and the console)."""

    protocol: str
    models: tuple
    verdict: str
    compared: tuple
    not_compared: tuple
    differences: tuple
    message: str


def check_same_images(results):
    """An ImagesCheck for each protocol with results of at least two models, in order."""
    checks = []
    for protocol in KEYS:
        found = [result for result in results if result.protocol == protocol]
        if len(found) >= 2:
            checks.append(compare_images(protocol, found))
    return checks


def _describe(protocol, key):
    return PAIR_COUNT if protocol == "pair" and key == "n" else DESCRIPTIONS[key]


def compare_images(protocol, results):
    """The ImagesCheck of results of one protocol (two or more)."""
    models = tuple(result.model for result in results)
    records = [images_of(result) or {} for result in results]
    compared, not_compared, nowhere, differences = [], [], [], []
    for key in KEYS[protocol]:
        values = [record.get(key) for record in records]
        given = [(model, value) for model, value in zip(models, values) if value is not None]
        if len({value for _, value in given}) > 1:
            differences.append(f"{_describe(protocol, key)}: " + ", ".join(
                f"{model} {_short(value)}" for model, value in given))
        if len(given) == len(values):
            compared.append(key)
        elif given:
            not_compared.append(key)
        else:
            nowhere.append(key)
    what = ", ".join(_describe(protocol, key) for key in compared) or "nothing"
    if differences:
        verdict = DIFFERENT
        message = (f"The {protocol} results of {_names(models)} were NOT computed on the "
                   f"same data ({'; '.join(differences)}): their numbers are not comparable, "
                   "and no model comparison is tested.")
    elif "n" in compared and len(compared) >= 2 and not not_compared:
        verdict = SAME
        unrecorded = ", ".join(_describe(protocol, key) for key in nowhere)
        message = (f"The {protocol} results of {_names(models)} were computed on the same data "
                   f"(compared: {what}" + (f"; no file records {unrecorded}" if nowhere else "")
                   + ").")
    else:
        verdict = UNKNOWN
        lacking = ", ".join(_describe(protocol, key) for key in not_compared + nowhere)
        message = (f"Cannot check that the {protocol} results of {_names(models)} come "
                   f"from the same data: some files do not record {lacking} (compared: {what}); "
                   "no model comparison is tested. Evaluate again with this version to record "
                   "them.")
    return ImagesCheck(protocol=protocol, models=models, verdict=verdict,
                       compared=tuple(compared), not_compared=tuple(not_compared + nowhere),
                       differences=tuple(differences), message=message)


def _short(value):
    """A digest shortened to 12 hex digits; a count as it is."""
    return f"{value[:12]}..." if isinstance(value, str) and len(value) > 12 else str(value)


def _names(models):
    return ", ".join(models[:-1]) + f" and {models[-1]}" if len(models) > 1 else models[0]


def paired_identities(first, second):
    """Whether two instance results' per-identity rows describe the same identities in the same
    order with the same groups (their `identities` lists agree), so they can be paired."""
    mine, theirs = (result.data.get("identities") or {} for result in (first, second))
    for key in ("identity", "group"):
        if key not in mine or key not in theirs:
            return False
        if not np.array_equal(np.asarray(mine[key]), np.asarray(theirs[key])):
            return False
    return first.group_names == second.group_names
