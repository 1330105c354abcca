"""The report's section for template-eval results (IJB-B / IJB-C): their check on load and their
tables. 1:1: TAR at each target FAR, insightface's reading beside the exact one, and the AUC;
per group: FNMR and matched FMR at the global threshold, TAR within the group, EER. 1:N: TPIR
per gallery and their mean, and the CMC."""
from mfftools.reporting.document import Section
from mfftools.reporting.tables import MISSING, Table, fmt_rate, fmt_threshold


def check_template(check, data):
    """The keys the report reads from a template-eval result (see docs/template-eval.md)."""
    for key in ("n_images", "n_templates"):
        check.number(data, key, "")
    check.mapping(data, "settings", "")
    if "tar_at_far" in data:
        check.number(data, "auc", "")
        for key, reading in check.mapping(data, "tar_at_far", "").items():
            for name in ("nearest_roc_point", "exact", "threshold"):
                check.number(reading, name, f"tar_at_far.{key}.", nullable=True)
    for name, group in (data.get("groups") or {}).items():
        for key, at in check.mapping(group, "at_far", f"groups.{name}.").items():
            for rate in ("fnmr", "fmr", "tar_within_group"):
                check.number(at, rate, f"groups.{name}.at_far.{key}.", nullable=True)
        check.number(group, "eer", f"groups.{name}.", nullable=True)
    if "identification" in data:
        identification = check.mapping(data, "identification", "")
        for name, gallery in check.mapping(identification, "galleries", "identification.").items():
            for k, entry in enumerate(check.get(gallery, "results", f"galleries.{name}.")):
                where = f"identification.galleries.{name}.results[{k}]."
                check.number(entry, "target_fpir", where)
                check.number(entry, "tpir", where, nullable=True)
        check.mapping(identification, "mean", "identification.")


def template_sections(results):
    """The sections of template-eval results: 1:1 (and its groups), then 1:N."""
    sections = []
    verified = [result for result in results if "tar_at_far" in result.data]
    if verified:
        section = Section("IJB templates: 1:1 verification")
        section.items.append(verification_table(verified))
        for result in verified:
            if result.data.get("groups"):
                section.items.append(group_table(result))
        sections.append(section)
    identified = [result for result in results if "identification" in result.data]
    if identified:
        section = Section("IJB templates: 1:N identification")
        section.items.append(identification_table(identified))
        sections.append(section)
    return sections


def verification_table(results):
    """TAR at each target FAR, both readings, with the exact threshold; the AUC."""
    keys = list(dict.fromkeys(key for result in results for key in result.data["tar_at_far"]))
    table = Table(
        title="1:1 verification of template pairs: TAR at FAR",
        row_header="FAR",
        blocks=[result.model for result in results],
        columns=["TAR (insightface)", "TAR (exact)", "Threshold"],
        note="TAR (insightface): the ROC point nearest the target FAR, as insightface's "
        "ijb_11.py reads it (for comparison with published tables). TAR (exact): at the exact "
        "threshold, the smallest with FAR <= the target; - where the impostor pairs cannot "
        "resolve the target.",
    )
    for key in keys:
        cells = []
        for result in results:
            reading = result.data["tar_at_far"].get(key, {})
            cells += [fmt_rate(reading.get("nearest_roc_point")), fmt_rate(reading.get("exact")),
                      fmt_threshold(reading.get("threshold"))]
        table.add_row(key, cells)
    table.add_row("AUC", [cell for result in results
                          for cell in (f"{result.data['auc']:.6f}", MISSING, MISSING)])
    table.add_row("Pairs (genuine)", [
        cell for result in results
        for cell in (f"{result.data['n_pairs']} ({result.data['n_genuine']})", MISSING,
                     MISSING)])
    return table


def group_table(result):
    """Per group at the global threshold of the smallest target FAR the pairs resolve."""
    key = next((key for key, reading in result.data["tar_at_far"].items()
                if reading.get("threshold") is not None), None)
    table = Table(
        title=f"1:1 per group ({result.model}) at FAR {key}",
        row_header="Group",
        blocks=[result.model],
        columns=["Genuine", "Impostor", "FNMR", "FMR", "TAR within group", "EER"],
        note="FNMR and FMR at the global threshold; FMR over the group's matched impostor pairs "
        "(both templates in the group); TAR within group at the threshold set on its own "
        "impostor pairs; EER where its FNMR and FMR cross.",
    )
    for name, group in result.data["groups"].items():
        at = group["at_far"].get(key, {}) if key else {}
        table.add_row(name, [str(group["n_genuine"]), str(group["n_impostor"]),
                             fmt_rate(at.get("fnmr")), fmt_rate(at.get("fmr")),
                             fmt_rate(at.get("tar_within_group")), fmt_rate(group.get("eer"))])
    return table


def identification_table(results):
    """TPIR at each target FPIR per gallery and their mean, and the mean CMC."""
    rows = {}
    for result in results:
        identification = result.data["identification"]
        for name, gallery in identification["galleries"].items():
            for entry in gallery["results"]:
                rows.setdefault(f"{name} TPIR @ FPIR {entry['target_fpir']:g}", {})[
                    result.model] = entry["tpir"]
        for entry in identification["mean"]["results"]:
            rows.setdefault(f"mean TPIR @ FPIR {entry['target_fpir']:g}", {})[
                result.model] = entry["tpir"]
        for rank, rate in zip(identification["ranks"], identification["mean"]["cmc"]):
            rows.setdefault(f"mean CMC rank {rank}", {})[result.model] = rate
    table = Table(
        title="1:N identification of templates, each gallery on its own",
        row_header="Statistic",
        blocks=[result.model for result in results],
        columns=["Value"],
        note="TPIR: probe templates whose mate is at rank 1 and above the threshold set at the "
        "target FPIR on the non-mated probes; mean: TPIR averaged over the galleries, CMC pooled "
        "over their mated probes (as insightface's ijb_evals.py).",
    )
    for label, values in rows.items():
        table.add_row(label, [fmt_rate(values.get(result.model)) for result in results])
    return table
