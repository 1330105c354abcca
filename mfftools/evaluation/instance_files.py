"""The instance protocol's per-identity CSV table (the results JSON: `mfftools.files`)."""
import csv
import math
from pathlib import Path

from mfftools.files import atomic_output


def _cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def write_per_identity_csv(result, path):
    """One row per identity: identity, group, n_images, TPR and FPR at each result, intra, inter.

    TPR is empty for an identity with one image (it has no genuine pair).
    """
    identities = result["identities"]
    entries = result["results"]
    first = entries[0]["per_identity"]
    header = ["identity", "group", "n_images"]
    for entry in entries:
        label = f"{entry['target_fpr']:g}_{entry['method']}"
        header += [f"tpr_{label}", f"fpr_{label}"]
    header += ["intra", "inter"]
    with atomic_output(path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for k, identity in enumerate(identities["identity"]):
            row = [identity, result["group_names"][identities["group"][k]], identities["n_images"][k]]
            for entry in entries:
                row += [entry["per_identity"]["tpr"][k], entry["per_identity"]["fpr"][k]]
            row += [first["intra"][k], first["inter"][k]]
            writer.writerow([_cell(value) for value in row])
    return Path(path)
