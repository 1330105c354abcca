"""The check that compared models were evaluated on the same images: what it compares, and its
verdict on the same data, other data, and files that do not say."""
import copy

from mfftools.reporting.same_images import (
    DIFFERENT,
    SAME,
    UNKNOWN,
    check_same_images,
    paired_identities,
)
from result_builders import as_file as _file
from result_builders import identification_result, images_record, instance_result, pair_result


def _two(rng, edit=None):
    first = instance_result(rng, "a", n_per_group=5)
    second = copy.deepcopy(first)
    if edit:
        edit(second)
    return [_file(first, "a"), _file(second, "b")]


def test_the_same_images_pass_and_say_what_was_compared(rng):
    (check,) = check_same_images(_two(rng))
    assert check.verdict == SAME and check.models == ("a", "b")
    assert check.compared == ("n", "paths_sha256", "identities_sha256")
    assert check.message == (
        "The instance results of a and b were computed on the same data (compared: the number "
        "of images, the image paths (sha256), the identity names (sha256)).")


def test_other_images_fail_loudly_naming_what_differs(rng):
    def other_subset(data):
        data["images"] = images_record(data["images"]["n"] - 1, "fewer paths", "names")

    (check,) = check_same_images(_two(rng, other_subset))
    assert check.verdict == DIFFERENT
    n = check.differences[0].split(": ")[1]
    assert n.startswith("a ") and len(check.differences) == 2
    assert check.differences[1].startswith("the image paths (sha256): a ")
    assert "were NOT computed on the same data" in check.message
    assert "no model comparison is tested" in check.message


def test_digests_no_file_records_are_said_and_one_file_lacking_them_is_unknown(rng):
    def no_paths(data):
        data["images"]["paths_sha256"] = None

    first, second = _two(rng, no_paths)
    first.data["images"]["paths_sha256"] = None
    (check,) = check_same_images([first, second])
    assert check.verdict == SAME
    assert check.message.endswith("(compared: the number of images, the identity names "
                                  "(sha256); no file records the image paths (sha256)).")
    (check,) = check_same_images(_two(rng, no_paths))  # one file has paths, the other not
    assert check.verdict == UNKNOWN and check.not_compared == ("paths_sha256",)
    older = _two(rng, lambda data: data.pop("images"))
    (check,) = check_same_images(older)
    assert check.verdict == UNKNOWN
    assert check.message.startswith("Cannot check that the instance results of a and b come "
                                    "from the same data: some files do not record the number of "
                                    "images")


def test_each_protocol_is_checked_apart_and_a_lone_model_is_not(rng):
    pairs = [_file(pair_result(rng), "a"), _file(pair_result(rng), "b")]
    ident = [_file(identification_result(rng), "a")]
    checks = check_same_images(_two(rng) + pairs + ident)
    assert [(check.protocol, check.verdict) for check in checks] == [
        ("instance", SAME), ("pair", SAME)]
    assert checks[1].compared == ("n", "labels_sha256")
    assert "(compared: the number of pairs, the pairs' labels and groups (sha256))" in \
        checks[1].message


def test_per_identity_rows_pair_up_only_for_the_same_identities_and_groups(rng):
    first, second = _two(rng)
    assert paired_identities(first, second)
    second.data["identities"]["group"] = list(reversed(second.data["identities"]["group"]))
    assert not paired_identities(first, second)
    del second.data["identities"]
    assert not paired_identities(first, second)
