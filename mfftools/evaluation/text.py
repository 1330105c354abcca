"""The tables the commands print, of each protocol's results dict: `mfftools inst-eval`,
`pair-eval`, `ident-eval`, `template-eval` and `calibrate` print them, and the Python API's
results show them as their repr. Plain text from the dict alone (no numpy), so the command line
imports it without loading the evaluations."""
import math


def degenerate_note(result):
    """`not shown: degenerate embeddings (...)` for results computed on degenerate embeddings,
    else None: a fairness measure of such embeddings must not read as parity."""
    findings = result.get("degenerate")
    return f"not shown: degenerate embeddings ({'; '.join(findings)})" if findings else None


def _fixed(value, digits=4):
    """`value` with `digits` decimals; None as a dash."""
    return "-" if value is None else f"{value:.{digits}f}"


def _number(value, spec):
    """`value` formatted by `spec`; None as a dash in the same width, so columns stay aligned."""
    if value is None:
        width = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
        return f"{'-':>{width or 1}}"
    return format(value, spec)


def instance_summary(result):
    """The results as readable text: one table per target and method, then similarity."""
    lines = [
        f"{result['n_images']} images, {result['n_identities']} identities "
        f"({result['n_single_image_identities']} with one image), dim {result['dim']}",
    ]
    header = f"{'':<14}{'TPR mean':>10}{'TPR std':>10}{'FPR mean':>11}{'FPR std':>11}" \
             f"{'FMR':>11}{'FMR rel':>9}{'FNMR':>10}"
    for entry in result["results"]:
        state = "converged" if entry["converged"] else "not converged"
        lines += [
            "",
            f"target FPR {entry['target_fpr']:g} ({entry['method']}, {state}): "
            f"threshold {entry['threshold']:.6f}, TPR {_number(entry['tpr'], '.6f')}, "
            f"FPR {entry['fpr']:.3e}",
            header,
        ]
        rows = [("instance", entry["instance"])] + list(entry["groups"].items())
        for name, stats in rows:
            lines.append(
                f"{name:<14}{_number(stats['tpr_mean'], '10.6f')}"
                f"{_number(stats['tpr_std'], '10.6f')}"
                f"{_number(stats['fpr_mean'], '11.3e')}{_number(stats['fpr_std'], '11.3e')}"
                f"{_number(stats.get('fmr'), '11.3e') if 'fmr' in stats else '':>11}"
                f"{_number(stats.get('fmr_relative'), '9.3f') if 'fmr' in stats else '':>9}"
                f"{_number(stats.get('fnmr'), '10.6f') if 'fnmr' in stats else '':>10}"
            )
        lines.append("FMR: impostor pairs with both images in the group (NIST's demographically "
                     "matched FMR); FMR rel: relative to "
                     f"{entry['reference_group'] or '-'}")
        fair = entry["fairness"]
        if degenerate_note(result):
            lines.append(f"fairness: {degenerate_note(result)}")
        elif all(value is None for value in fair.values()):
            lines.append("fairness: n/a (fewer than two groups with genuine and impostor pairs)")
        else:
            lines.append("fairness: " + ", ".join(
                f"{key} {_number(value, '.4f')}" for key, value in fair.items()))
    lines += ["", f"{'similarity':<14}{'intra mean*':>12}{'intra std*':>11}{'inter mean':>11}"
                  f"{'inter std':>10}"]
    for name, stats in result["similarity"].items():
        lines.append(
            f"{name:<14}{_number(stats['intra_mean_multi'], '12.6f')}"
            f"{_number(stats['intra_std_multi'], '11.6f')}"
            f"{_number(stats['inter_mean'], '11.6f')}{_number(stats['inter_std'], '10.6f')}"
        )
    lines.append("* over identities with at least two images (one image scores 1 by construction)")
    if "eer" in result:
        lines.append("EER (matched impostors): " + ", ".join(
            f"{name} {_number(value, '.4f')}" for name, value in result["eer"].items()))
    engine = result["engine"]
    lines.append(
        f"screened in {engine['precision']} (bound {engine['screening_bound']:.3g}), "
        f"{engine['n_rescored_pairs']} pairs rescored canonically"
    )
    return "\n".join(lines)


def pair_table(results):
    """The results as a readable table: per group or set its accuracy (mean +- std over folds),
    TAR@FAR=1e-3 and the FAR its thresholds give, and the EER; then, over two groups or more
    (insightface's verification sets are benchmarks of their own, each on its own line), the
    mean accuracy, STD and SER. A TAR whose target the pair counts cannot resolve is marked so."""
    names = results["group_names"]
    groups = [results["groups"][name] for name in names]
    sets = results.get("verification_sets", [])
    width = max(len("group"), *(len(name) for name in names))
    eers = results.get("eer", {})
    lines = [f"Pair protocol: {_what(names, sets)}, {results['n_pairs']} pairs, "
             f"{_folds(results)}, {results.get('grid', 'mixfairface')} grid",
             f"{'group':<{width}}  {'accuracy (%)':>16}  {'TAR@FAR=1e-3':>12}  {'at FAR':>8}"
             f"  {'EER':>7}"]
    for name, group in zip(names, groups):
        accuracy = f"{group['accuracy'] * 100:.2f} +- {group['accuracy_std'] * 100:.2f}"
        tar = (f"{group['tar_at_far_1e-3']:.4f}" if group["tar_at_far_resolvable"]
               else "unresolved*")
        far = f"{group['far_at_tar_threshold']:.2g}"
        eer = "-" if eers.get(name) is None else f"{eers[name]:.4f}"
        lines.append(f"{name:<{width}}  {accuracy:>16}  {tar:>12}  {far:>8}  {eer:>7}")
    if results["std"] is not None and degenerate_note(results):
        lines += [f"{'mean':<{width}}  {results['mean_accuracy']:>16.2f}",
                  f"STD and SER {degenerate_note(results)}"]
    elif results["std"] is not None:
        ser = results["ser"]
        lines += [
            f"{'mean':<{width}}  {results['mean_accuracy']:>16.2f}",
            f"{'STD':<{width}}  {results['std']:>16.2f}",
            f"{'SER':<{width}}  {'n/a (a perfect group)' if ser is None else f'{ser:.3f}':>16}",
        ]
    if sets and len(sets) < len(names):
        lines.append(f"mean, STD and SER over the groups only: {', '.join(sets)} "
                     f"{'is a benchmark' if len(sets) == 1 else 'are benchmarks'} of its own")
    resolutions = [group["far_resolution"] for group in groups
                   if not group["tar_at_far_resolvable"]]
    if resolutions:
        fewest = round(1 / max(resolutions))
        needed = math.ceil(1 / results["far_target"])
        lines.append(
            f"* unresolved: choosing a threshold at FAR={results['far_target']:g} needs at least "
            f"{needed:,} impostor pairs besides the test fold, and there are as few as {fewest:,} "
            f"(FAR steps of 1/{fewest:,}); 'at FAR' is what the thresholds found give"
        )
    return "\n".join(lines)


def _what(names, sets):
    if len(names) == 1:
        return names[0]
    n_groups = len(names) - len(sets)
    parts = [f"{count} {word}{'s' if count > 1 else ''}"
             for count, word in ((n_groups, "group"), (len(sets), "verification set")) if count]
    return " and ".join(parts)


def _folds(results):
    counts = sorted({len(group["fold_accuracies"]) for group in results["groups"].values()})
    number = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    if results.get("fold_assignment") == "file":
        return f"{number} folds from the file"
    return f"{number} contiguous folds"


_TIES = {"optimistic": "behind it", "pessimistic": "ahead of it"}


def _rate_column(value, width):
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.4f}"


def identification_summary(result):
    """The results as readable text: per target, FNIR and FPIR per group; then the CMC."""
    names = result["group_names"]
    width = max(8, *(len(name) for name in names))
    matched = "" if result.get("match_by") is None else f" (matched by {result['match_by']})"
    lines = [
        f"{result['n_templates']} templates, {result['n_mated']} mated{matched} and "
        f"{result['n_nonmated']} non-mated searches; FNIR at rank {result['rank']} "
        f"(ties with the mate {_TIES[result.get('rank_ties', 'optimistic')]})",
    ]
    for entry in result["results"]:
        lines += [
            "",
            f"target FPIR {entry['target_fpir']:g}: threshold {entry['threshold']:.6f}, "
            f"FNIR {_rate_column(entry['fnir'], 0)}, FPIR {_rate_column(entry['fpir'], 0)}",
            f"{'group':<{width}} {'mated':>7} {'non-mated':>10} {'FNIR':>8} {'FPIR':>8}",
        ]
        for name in names:
            stats = entry["groups"][name]
            lines.append(f"{name:<{width}} {stats['n_mated']:>7} {stats['n_nonmated']:>10} "
                         f"{_rate_column(stats['fnir'], 8)} {_rate_column(stats['fpir'], 8)}")
        fair = entry["fairness"]
        if degenerate_note(result):
            lines.append(f"max/geomean: {degenerate_note(result)}")
            continue
        lines.append(
            "max/geomean: FNIR " + ("-" if fair["fnir_max_geomean"] is None
                                    else f"{fair['fnir_max_geomean']:.3f}")
            + ", FPIR " + ("-" if fair["fpir_max_geomean"] is None
                           else f"{fair['fpir_max_geomean']:.3f}")
        )
    ranks = " ".join(f"{'rank ' + str(k):>8}" for k in result["ranks"])
    lines += ["", f"{'CMC':<{width}} {ranks}"]
    for name in ["all"] + names:
        rates = " ".join(_rate_column(v, 8) for v in result["cmc"][name])
        lines.append(f"{name:<{width}} {rates}")
    return "\n".join(lines)


def template_summary(result):
    """The results as readable text."""
    settings = result["settings"]
    lines = [f"{result['n_templates']} templates of {result['n_images']} images "
             f"({result['n_media']} media); norm {settings['norm']}, detector score "
             f"{settings['detector_score']}, flip {'on' if settings['flip'] else 'off'}"]
    if "tar_at_far" in result:
        lines += ["", f"1:1: {result['n_pairs']} pairs ({result['n_genuine']} genuine), "
                  f"AUC {result['auc']:.6f}",
                  f"{'FAR':>8} {'TAR nearest':>12} {'TAR exact':>10} {'threshold':>10}"]
        for key, reading in result["tar_at_far"].items():
            lines.append(f"{key:>8} {_fixed(reading['nearest_roc_point']):>12} "
                         f"{_fixed(reading['exact']):>10} {_fixed(reading['threshold'], 6):>10}")
    if "groups" in result:
        names = list(result["groups"])
        width = max(8, *(len(name) for name in names))
        key = next((k for k, v in result["tar_at_far"].items() if v["threshold"] is not None),
                   None)
        lines += ["", f"per group at the global threshold of FAR {key}:",
                  f"{'group':<{width}} {'genuine':>8} {'impostor':>9} {'FNMR':>8} {'FMR':>8} "
                  f"{'EER':>8}"]
        for name in names:
            group = result["groups"][name]
            at = group["at_far"].get(key, {}) if key else {}
            lines.append(f"{name:<{width}} {group['n_genuine']:>8} {group['n_impostor']:>9} "
                         f"{_fixed(at.get('fnmr')):>8} {_fixed(at.get('fmr')):>8} "
                         f"{_fixed(group['eer']):>8}")
    if "identification" in result:
        identification = result["identification"]
        for gallery_name, gallery in identification["galleries"].items():
            lines += ["", f"1:N {gallery_name}: {gallery['n_templates']} templates, "
                      f"{gallery['n_mated']} mated and {gallery['n_nonmated']} non-mated "
                      "probe templates"]
            for entry in gallery["results"]:
                lines.append(f"  FPIR {entry['target_fpir']:g}: TPIR {_fixed(entry['tpir'])} "
                             f"(threshold {entry['threshold']:.6f})")
            lines.append("  CMC " + ", ".join(
                f"rank {k} {_fixed(v)}" for k, v in zip(gallery["ranks"], gallery["cmc"]["all"])))
        mean = identification["mean"]
        lines += ["", "1:N mean of the galleries: " + ", ".join(
            f"TPIR@FPIR {entry['target_fpir']:g} {_fixed(entry['tpir'])}"
            for entry in mean["results"])]
        lines.append("  CMC " + ", ".join(
            f"rank {k} {_fixed(v)}" for k, v in zip(identification["ranks"], mean["cmc"])))
    skipped = result["skipped"]
    if skipped["pairs"] or skipped["n_templates"]:
        lines += ["", f"skipped: {skipped['pairs']} pairs and {skipped['n_templates']} templates "
                  "without images in the file"]
    return "\n".join(lines)


def calibration_table(result):
    """One row per method: AUROC, TPR and the groups' FPR spread (AAD, MAD) at each target,
    and the mean KS, ECE and Brier over groups; then the fallbacks."""
    targets = result["targets"]
    header = ["method", "AUROC"]
    for target in targets:
        header += [f"TPR@{target}", f"FPR AAD@{target}", f"FPR MAD@{target}"]
    header += ["KS", "ECE", "Brier"]
    rows = []
    for method, entry in result["methods"].items():
        row = [method, _fixed(entry["auroc"])]
        for target in targets:
            found = entry["fpr_spread"][target]
            row += [_fixed(entry["tpr_at_fpr"][target]), _fixed(found["aad"], 5),
                    _fixed(found["mad"], 5)]
        row += [_fixed(entry["calibration"][measure]["mean"])
                for measure in ("ks", "ece", "brier")]
        rows.append(row)
    widths = [max(len(str(line[column])) for line in [header] + rows)
              for column in range(len(header))]
    folds = result["folds"]
    lines = [f"Calibration: {result['n_pairs']} pairs, {len(result['group_names'])} groups, "
             + ("all pairs" if folds == 1 else f"{folds} folds ({result['fold_assignment']}), "
                "each value the mean over test folds")]
    for line in [header] + rows:
        lines.append("  ".join(text.ljust(width) if column == 0 else text.rjust(width)
                               for column, (text, width) in enumerate(zip(line, widths))))
    fallbacks = [f"{method} {entry['fallbacks']['fitted']} fitted, "
                 f"{entry['fallbacks']['test_pairs']} test pairs"
                 for method, entry in result["methods"].items()
                 if entry["fallbacks"]["fitted"] or entry["fallbacks"]["test_pairs"]]
    if fallbacks:
        lines.append("fallbacks to the global fit: " + "; ".join(fallbacks))
    return "\n".join(lines)


def fit_summary(method, calibrator, n_pairs, n_images, n_fallbacks):
    """What `calibrate fit` says of a fitted method (`n_images` None: not known)."""
    images = "" if n_images is None else f" of {n_images} images"
    return (f"{method} ({calibrator}) fitted on {n_pairs} pairs{images}; {n_fallbacks} fallback"
            f"{'' if n_fallbacks == 1 else 's'} to the global fit")
