"""insightface `.bin` pair files (PROTOCOLS 1.3, 1.5), read with a restricted unpickler.

RFW's `<Group>_test.bin` and insightface's verification sets (`lfw.bin`, `cfp_fp.bin`,
`agedb_30.bin`, ...) are each a pickle of `(bins, issame)`: `bins` 2P encoded images (pair k is
items 2k and 2k+1), `issame` P booleans. Pickle runs code on load, so only what such a file needs is
allowed: lists, tuples, bytes, bools and numpy bool arrays (plus `_codecs.encode(text, "latin1")`,
the way protocol-2 pickles spell bytes). Anything else is refused before it is built.
"""

import logging
import pickle
from pathlib import Path

import numpy as np

from mfftools.data.groups import select_groups
from mfftools.data.images import EncodedImages
from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

BIN_SUFFIX = "_test.bin"
_TEST = "_test"
_BOOL = np.dtype(np.bool_)


class _ForbiddenType(Exception):
    pass


def _bool_dtype(spec, *args):
    dtype = np.dtype(spec, *args)
    if dtype != _BOOL:
        raise _ForbiddenType(f"numpy dtype {spec!r} (only bool arrays are allowed)")
    return dtype


def _reconstruct(subtype, shape, typecode):
    if subtype is not np.ndarray:
        raise _ForbiddenType(f"array subtype {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, _BOOL)


def _frombuffer(buffer, dtype, shape, order):
    if np.dtype(dtype) != _BOOL:
        raise _ForbiddenType(f"numpy dtype {dtype!r} (only bool arrays are allowed)")
    return np.frombuffer(buffer, dtype=_BOOL).reshape(shape, order=order).copy()


def _bool_scalar(dtype, data):
    if np.dtype(dtype) != _BOOL or not isinstance(data, bytes) or len(data) != 1:
        raise _ForbiddenType("numpy scalar that is not a bool")
    return np.bool_(data != b"\x00")


def _latin1_encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _ForbiddenType(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_ALLOWED = {}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "_reconstruct")] = _reconstruct
    _ALLOWED[(_module, "scalar")] = _bool_scalar
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_module, "_frombuffer")] = _frombuffer
_ALLOWED[("numpy", "ndarray")] = np.ndarray
_ALLOWED[("numpy", "dtype")] = _bool_dtype
_ALLOWED[("_codecs", "encode")] = _latin1_encode


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _ForbiddenType(f"{module}.{name}") from None


def load_pair_bin(path):
    """Read one `.bin` file -> (bins: list of bytes [2P], issame: numpy bool [P]).

    Raises MfftoolsError naming the file for a missing file, a forbidden type, a pickle that is
    not `(bins, issame)`, an odd number of images or an `issame` of the wrong length.
    """
    path = Path(path)
    if not path.is_file():
        raise MfftoolsError(f"{path}: no such file")
    try:
        with path.open("rb") as handle:
            content = _RestrictedUnpickler(handle, encoding="bytes").load()
    except _ForbiddenType as error:
        raise MfftoolsError(f"{path}: refused to unpickle a forbidden type: {error}") from error
    except Exception as error:  # a damaged pickle can raise almost anything
        raise MfftoolsError(
            f"{path}: not a readable pickle ({type(error).__name__}: {error})"
        ) from error
    return _check_content(content, path)


def _check_content(content, path):
    if not isinstance(content, (tuple, list)) or len(content) != 2:
        raise MfftoolsError(
            f"{path}: expected a pickled (bins, issame) pair, found {type(content).__name__}"
        )
    bins, issame = content
    if not isinstance(bins, (list, tuple)):
        raise MfftoolsError(
            f"{path}: bins must be a list of encoded images, found {type(bins).__name__}"
        )
    bins = [bytes(item) if isinstance(item, bytearray) else item for item in bins]
    for position, item in enumerate(bins):
        if not isinstance(item, bytes):
            raise MfftoolsError(f"{path}: bins item {position} is {type(item).__name__}, not bytes")
    if not bins or len(bins) % 2:
        raise MfftoolsError(
            f"{path}: bins holds {len(bins)} images; a pair file needs an even, non-zero number"
        )
    issame = _as_bool_array(issame, path)
    if 2 * len(issame) != len(bins):
        raise MfftoolsError(
            f"{path}: issame has {len(issame)} entries for {len(bins)} images"
            f" (expected {len(bins) // 2})"
        )
    return bins, issame


def _as_bool_array(issame, path):
    if isinstance(issame, np.ndarray):
        if issame.dtype != _BOOL or issame.ndim != 1:
            raise MfftoolsError(f"{path}: issame must be a 1-d bool array")
        return issame.copy()
    if not isinstance(issame, (list, tuple)):
        raise MfftoolsError(
            f"{path}: issame must be a list of booleans, found {type(issame).__name__}"
        )
    for position, item in enumerate(issame):
        if not isinstance(item, (bool, np.bool_)):
            raise MfftoolsError(
                f"{path}: issame item {position} is {type(item).__name__}, not a boolean"
            )
    return np.asarray(issame, dtype=np.bool_)


def bin_set_name(path):
    """The set a .bin file holds: its stem, less a `_test` suffix (`lfw.bin` is lfw, RFW's
    `African_test.bin` is African)."""
    stem = Path(path).stem
    return stem[: -len(_TEST)] if stem.endswith(_TEST) and stem != _TEST else stem


def bin_files(folder):
    """[(set name, file)] of the .bin files of a folder, sorted by name."""
    named = sorted((bin_set_name(file), file) for file in Path(folder).glob("*.bin"))
    if not named:
        raise MfftoolsError(
            f"{folder}: no .bin pair files (such as <Group>{BIN_SUFFIX} or lfw.bin)"
        )
    return named


class PairBinSets(EncodedImages):
    """Pair files, one group (a set) each, rows concatenated in the order given.
    Item k -> (image [3, 112, 112] or None, k).

    `named_files` is [(name, path)] (e.g. lfw.bin, cfp_fp.bin as given on a command line).
    Attributes: `group_names`, `issame` (bool [P]), `pair_group` (int64 [P]), `n_rows` (2P) and
    `files` (the files, in group order).
    """

    def __init__(self, named_files):
        names = [name for name, _ in named_files]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise MfftoolsError(
                f"two pair files hold the set {', '.join(repeated)}: each .bin file names its "
                "set by its file name, so give each set once"
            )
        self.group_names = names
        self.files = [Path(path) for _, path in named_files]
        self.bins, issame, pair_group, self._sources = [], [], [], []
        for group_index, file in enumerate(self.files):
            bins, group_issame = load_pair_bin(file)
            self.bins.extend(bins)
            self._sources.extend((group_index, position) for position in range(len(bins)))
            issame.append(group_issame)
            pair_group.append(np.full(len(group_issame), group_index, dtype=np.int64))
            logger.info(
                "%s: %d pairs (%d genuine)", file, len(group_issame), int(group_issame.sum())
            )
        self.issame = np.concatenate(issame)
        self.pair_group = np.concatenate(pair_group)
        self.n_rows = len(self.bins)

    def __len__(self):
        return self.n_rows

    def encoded(self, index):
        return self.bins[index]

    def image_name(self, index):
        group_index, position = self._sources[index]
        return f"{self.files[group_index].name} image {position}"

    def describe(self, index):
        group_index, position = self._sources[index]
        return f"{self.files[group_index]} image {position}"


class PairBinFolder(PairBinSets):
    """Every `.bin` file of a folder, one group each (`<Group>_test.bin` is the group Group,
    `lfw.bin` the set lfw), sorted by name; `groups` selects some of them by name."""

    def __init__(self, folder, groups=None):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            problem = "not a folder" if self.folder.exists() else "no such folder"
            raise MfftoolsError(
                f"{self.folder}: {problem} (expected a folder of <Group>{BIN_SUFFIX} files)"
            )
        named = bin_files(self.folder)
        chosen = select_groups([name for name, _ in named], groups, self.folder)
        super().__init__([(name, file) for name, file in named if name in chosen])
