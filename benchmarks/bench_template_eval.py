"""Benchmark of template-eval at IJB-C's size against a bare numpy process.

A synthetic IJB-C-sized embeddings file (469,375 images in 23,124 templates, frames grouped into
media, detector scores; D = 512, features given), its 1:1 pair list (15,658,489 template pairs,
19,557 genuine) and 1:N lists (G1: 1,772 templates, G2: 1,759, probes: 19,593). Whole processes
are timed (start, imports and reading the files included), each in its own process so that peak
memory is its own:
  * the floor: a bare numpy process that reads the features, builds the templates (each image
    weighted by its detector score over its media's frames, summed per template by sorted runs,
    normalised), reads the pair list (numpy's text parser, no checks) and takes the pair dot
    products in float32, a chunk at a time;
  * template-eval 1:1 (`--pairs`) and 1:N (`--gallery G1 --gallery G2 --probes P`);
  * the same with `--calibration` of a faircal fit (K = 100 clusters, beta calibrators, fitted on
    a small synthetic pair set of the same dimension): every pair and search scored by its
    calibrated confidence (each template keyed by its nearest centroid).

    python benchmarks/bench_template_eval.py                  # IJB-C's size
    python benchmarks/bench_template_eval.py --scale 0.05     # a quick check
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_inst_eval import machine, timed_process  # noqa: E402

IJBC = {"images": 469375, "templates": 23124, "pairs": 15658489, "genuine": 19557,
        "g1": 1772, "g2": 1759, "probes": 19593}
CHUNK = 1 << 16
LISTS = ("ijbc_1N_gallery_G1.csv", "ijbc_1N_gallery_G2.csv", "ijbc_1N_probe_mixed.csv")


def sizes(scale):
    return {name: max(int(round(value * scale)), 4) for name, value in IJBC.items()}


def synthesize(folder, size, dim, seed=0):
    """The embeddings file, pair list and 1:N lists (see the module's docstring)."""
    from mfftools.embeddings import EmbeddingsWriter

    rng = np.random.default_rng(seed)
    n_templates, n_images = size["templates"], size["images"]
    n_gallery = size["g1"] + size["g2"]
    subject = np.r_[np.arange(n_gallery), rng.integers(0, n_gallery, n_templates - n_gallery)]
    template = np.sort(rng.integers(0, n_templates, n_images))
    template[:n_templates] = np.arange(n_templates)  # every template has an image
    template.sort()
    media = template * 8 + rng.integers(0, 8, n_images)  # a few media per template
    centres = rng.normal(size=(n_gallery, dim)).astype(np.float32)
    path = folder / "ijbc.h5"
    columns = ("template", "media", "detector_score")
    with EmbeddingsWriter.create(path, layout="images", dim=dim, group_names=["IJBC"],
                                 optional_columns=columns, attrs={"flip": True}) as writer:
        for first in range(0, n_images, 65536):
            ids = template[first : first + 65536]
            rows = centres[subject[ids]] + 1.5 * rng.normal(size=(len(ids), dim)).astype(
                np.float32)
            writer.append(rows, identity=ids, group=np.zeros(len(ids), np.int64),
                          path=[""] * len(ids), template=ids, media=media[first : first + 65536],
                          detector_score=rng.uniform(0.5, 1.0, len(ids)).astype(np.float32))
    pairs = folder / "pairs.txt"
    with pairs.open("w") as handle:
        first = rng.integers(0, n_templates, size["pairs"])
        second = rng.integers(0, n_templates, size["pairs"])
        label = np.zeros(size["pairs"], np.int64)
        for k in range(size["genuine"]):  # genuine pairs: templates of one subject
            same = np.flatnonzero(subject == subject[first[k]])
            second[k] = same[rng.integers(0, len(same))]
            label[k] = 1
        label[size["genuine"]:] = (subject[first] == subject[second])[size["genuine"]:]
        for start in range(0, size["pairs"], CHUNK):
            block = np.stack([first, second, label], axis=1)[start : start + CHUNK]
            np.savetxt(handle, block, fmt="%d")
    galleries = (np.arange(size["g1"]), size["g1"] + np.arange(size["g2"]))
    probes = n_gallery + np.arange(min(size["probes"], n_templates - n_gallery))
    for name, chosen in zip(LISTS, (*galleries, probes)):
        rows = "".join(f"{t},{subject[t]},x.jpg\n" for t in chosen)
        (folder / name).write_text("TEMPLATE_ID,SUBJECT_ID,FILENAME\n" + rows)


def fit_calibration(folder, dim, clusters=100):
    """A faircal calibration (cal.npz) fitted on a small synthetic pair set of dimension `dim`."""
    from mfftools.cli import main
    from mfftools.data.synthetic_embeddings import biased_pairs, write_biased_pairs

    pairs = biased_pairs(group_names=[f"group{k}" for k in range(8)], identities_per_group=60,
                         images_per_identity=4, pairs_per_group=3000, dim=dim, seed=1)
    write_biased_pairs(folder / "calibration_pairs.h5", pairs)
    main(["-q", "calibrate", "fit", str(folder / "calibration_pairs.h5"), "--method", "faircal",
          "--clusters", str(clusters), "--out", str(folder / "cal.npz")], standalone_mode=False)


def _files(folder):
    """The files `synthesize` and `fit_calibration` wrote into `folder`."""
    return (folder / "ijbc.h5", folder / "pairs.txt",
            [folder / name for name in LISTS], folder / "cal.npz")


def numpy_floor(path, pairs):
    """Read the features, build the templates, read the pairs, take the pair dot products."""
    import h5py

    with h5py.File(path, "r") as handle:
        template = handle["template"][()]
        media = handle["media"][()]
        score = handle["detector_score"][()].astype(np.float64)
        ids, inverse = np.unique(template, return_inverse=True)
        _, pair_of, counts = np.unique(np.stack([template, media], 1), axis=0,
                                       return_inverse=True, return_counts=True)
        weight = score / counts[pair_of.reshape(-1)]
        dataset = handle["embeddings"]
        sums = np.zeros((len(ids), dataset.shape[1]))
        for first in range(0, len(template), 65536):
            block = slice(first, first + 65536)
            order = np.argsort(inverse[block], kind="stable")
            members = inverse[block][order]
            starts = np.flatnonzero(np.r_[True, members[1:] != members[:-1]])
            weighted = dataset[block][order] * weight[block][order, None].astype(np.float32)
            sums[members[starts]] += np.add.reduceat(weighted, starts, axis=0)
    features = (sums / np.linalg.norm(sums, axis=1, keepdims=True)).astype(np.float32)
    values = np.fromstring(pairs.read_bytes(), dtype=np.int64, sep=" ").reshape(-1, 3)
    left, right = np.searchsorted(ids, values[:, 0]), np.searchsorted(ids, values[:, 1])
    scores = np.empty(len(values), np.float32)
    for first in range(0, len(values), CHUNK):
        chunk = slice(first, first + CHUNK)
        scores[chunk] = np.einsum("ij,ij->i", features[left[chunk]], features[right[chunk]])
    return scores


def run_one(args):
    mode, path, pairs, *lists, calibration = args.one
    if mode == "floor":
        numpy_floor(Path(path), Path(pairs))
    else:
        from mfftools.cli import main

        what = (["--pairs", pairs] if mode.startswith("one-to-one") else
                ["--gallery", lists[0], "--gallery", lists[1], "--probes", lists[2]])
        if mode.endswith("calibrated"):
            what += ["--calibration", calibration]
        main(["-q", "template-eval", path, *what, "--json", args.out], standalone_mode=False)
    print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="Fraction of IJB-C's size.")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--one", nargs=7, help=argparse.SUPPRESS)
    parser.add_argument("--make", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return run_one(args)
    if args.make:
        synthesize(Path(args.make), sizes(args.scale), args.dim)
        return fit_calibration(Path(args.make), args.dim)
    size = sizes(args.scale)
    print(f"template-eval benchmark: {size['images']:,} images, {size['templates']:,} templates, "
          f"{size['pairs']:,} pairs ({size['genuine']:,} genuine), 1:N G1 {size['g1']:,} + "
          f"G2 {size['g2']:,} templates, D={args.dim}: {machine('cpu')}")
    print("whole processes (start, imports, reading the files included); ratio = time / floor")
    print(f"{'what':>22} {'seconds':>8} {'peak MB':>8} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as folder:
        # Written by a process of its own, so that this one stays small: a child's peak memory
        # starts from its parent's size when it is forked.
        subprocess.run([sys.executable, __file__, "--make", folder, "--scale", str(args.scale),
                        "--dim", str(args.dim)], check=True, stdout=subprocess.DEVNULL)
        path, pairs, lists, calibration = _files(Path(folder))
        files = [str(path), str(pairs), *map(str, lists), str(calibration)]
        floor = None
        for mode, label in (("floor", "numpy floor"), ("one-to-one", "template-eval 1:1"),
                            ("one-to-n", "template-eval 1:N"),
                            ("one-to-one-calibrated", "1:1 --calibration"),
                            ("one-to-n-calibrated", "1:N --calibration")):
            out = Path(folder) / f"{mode}.json"
            measured = timed_process([sys.executable, __file__, "--one", mode, *files,
                                      "--out", str(out)])
            if "error" in measured:
                print(f"{label:>22} failed: {measured['error']}")
                continue
            floor = floor or measured["seconds"]
            print(f"{label:>22} {measured['seconds']:>8.2f} {measured['rss_mb']:>8.0f} "
                  f"{measured['seconds'] / floor:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
