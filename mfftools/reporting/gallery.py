"""The faces behind the numbers: in each group the identities with the lowest TPR, the
highest-scoring impostor pairs (over all images and within each group) and the non-mated 1:N
searches that score highest, beside the template they hit. Thumbnails come from the images the
embeddings were extracted from (`SourceImages`, through the results' `source`, the embeddings
file); without images (`images=False`) each image is named by its path instead.

A result whose embeddings file cannot be read (not recorded, moved, replaced) has no gallery;
one whose source or images cannot be read keeps its cards, naming each image it cannot show by
its path. The report's notes say why; the report never fails for it.
"""
import logging
import math
from pathlib import Path

import numpy as np

from mfftools.data.source_images import SourceImages, source_of
from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.fingerprint import images_fingerprint
from mfftools.reporting.document import Card, Gallery, Section, Thumbnail
from mfftools.reporting.results import entry_label, images_of, per_identity_rates

logger = logging.getLogger(__name__)

LOWEST = 3  # identities with the lowest TPR shown in each group
IDENTITY_IMAGES = 4  # images shown of an identity or a template
GROUP_CARDS = 5  # impostor pairs and non-mated searches shown in each group

TITLE = "Faces behind the numbers"


def gallery_sections(instance_results, identification_results, images=True):
    """(sections, notes): a gallery section per instance and identification result with something
    to show, and notes on what was left out and why."""
    sections, notes, sources = [], [], []
    for results, build in ((instance_results, _instance_items),
                           (identification_results, _identification_items)):
        for result in results:
            found = _ResultImages(result, images)
            items = build(result, found) if found.readable else []
            notes += found.finish()
            sources += found.sources()
            if items:
                protocol = "instance protocol" if result.protocol == "instance" else "1:N"
                sections.append(Section(f"{TITLE}: {result.model}, {protocol}", items))
    if sections and not images:
        where = ", ".join(dict.fromkeys(sources)) or "the sources the embeddings name"
        notes.append(f"Thumbnails are left out (--no-images): the galleries name each image by "
                     f"its path in its source ({where}).")
    return sections, notes


def _instance_items(result, found):
    entry = result.data["results"][0]
    items = _lowest_tpr(result, entry, found)
    top = _records(result, "top_impostors", _is_pair, found)
    if top is None or not top["all"]:
        return items
    threshold = entry["threshold"]
    note = (f"A pair scoring above the threshold {threshold:.4f} ({entry_label(entry)}) is "
            "accepted there: a false match. Ties in score are listed by the pairs' file rows.")
    items.append(Gallery(f"The {len(top['all'])} highest-scoring impostor pairs",
                         [_pair_card(pair, threshold, found) for pair in top["all"]], note))
    for name in result.group_names:
        pairs = top["groups"].get(name) or []
        if pairs:
            items.append(Gallery(
                f"The {min(len(pairs), GROUP_CARDS)} highest-scoring impostor pairs within "
                f"{name}", [_pair_card(pair, threshold, found) for pair in pairs[:GROUP_CARDS]]))
    return items


def _lowest_tpr(result, entry, found):
    """A gallery per group: its identities with the lowest TPR at the entry's threshold (ties
    by label), each with its first images in file order."""
    columns = per_identity_rates(result, entry)
    labels = (result.data.get("identities") or {}).get("identity")
    if columns is None or labels is None or len(labels) != len(columns["group"]):
        found.say("no identities with the lowest TPR: the result has no per-identity rows")
        return []
    labels = np.asarray(labels, dtype=np.int64)
    galleries = []
    for g, name in enumerate(result.group_names):
        members = np.flatnonzero((columns["group"] == g) & ~np.isnan(columns["tpr"]))
        if not len(members):
            continue
        lowest = members[np.lexsort((labels[members], columns["tpr"][members]))][:LOWEST]
        cards = [_identity_card(int(labels[k]), columns, k, found) for k in lowest]
        galleries.append(Gallery(
            f"Lowest TPR in {name} at {entry_label(entry)} (threshold {entry['threshold']:.4f})",
            cards))
    return galleries


def _identity_card(label, columns, k, found):
    embeddings = found.file(None)
    rows = np.flatnonzero(embeddings.identity == label)
    name = f"identity {label}"
    if embeddings.identity_names is not None and len(rows):
        name = f"{embeddings.identity_names[rows[0]]} (identity {label})"
    n_images = int(columns["n_images"][k]) if "n_images" in columns else len(rows)
    shown = f", the first {IDENTITY_IMAGES} shown" if len(rows) > IDENTITY_IMAGES else ""
    thumbnails = [found.thumbnail(None, int(row)) for row in rows[:IDENTITY_IMAGES]]
    caption = (f"TPR {columns['tpr'][k]:.3f}, FPR {columns['fpr'][k]:.2e}; {n_images} images"
               f"{shown}")
    return Card([(name, thumbnails)], caption)


def _pair_card(pair, threshold, found):
    panels = []
    for side in (0, 1):
        path = pair["path"][side] if pair.get("path") else None
        panels.append((_who(pair, side), [found.thumbnail(None, pair["rows"][side], path)]))
    accepted = "; accepted: a false match" if pair["score"] > threshold else ""
    return Card(panels, f"score {pair['score']:.4f}{accepted}")


def _who(record, side=None):
    """An image's identity as a caption names it: its name, else its label; and its group."""
    def pick(key):
        value = record.get(key)
        return value[side] if side is not None and value is not None else value

    name, label, group = pick("identity_name"), pick("identity"), pick("group")
    who = name if name is not None else f"identity {label}"
    return f"{who} ({group})" if group is not None else who


def _identification_items(result, found):
    top = _records(result, "top_nonmated", _is_search, found)
    if top is None or not top["all"]:
        return []
    entry = result.data["results"][0]
    threshold = entry["threshold"]
    two_files = isinstance(result.data.get("source"), dict)
    roles = ("probes", "gallery") if two_files else (None, None)
    note = (f"Each search beside the template it scores highest with (its first "
            f"{IDENTITY_IMAGES} images); a search scoring above the threshold {threshold:.4f} "
            f"({entry_label(entry)}) is a false positive there.")
    items = [Gallery(f"The {len(top['all'])} non-mated searches with the highest scores",
                     [_search_card(search, threshold, roles, found) for search in top["all"]],
                     note)]
    for name in result.group_names:
        searches = top["groups"].get(name) or []
        if searches:
            items.append(Gallery(
                f"The {min(len(searches), GROUP_CARDS)} non-mated searches of {name} with the "
                "highest scores",
                [_search_card(search, threshold, roles, found)
                 for search in searches[:GROUP_CARDS]]))
    return items


def _search_card(search, threshold, roles, found):
    search_role, template_role = roles
    template = search["template"]
    paths = template.get("path") or [None] * len(template["rows"])
    template_images = [found.thumbnail(template_role, row, path)
                       for row, path in zip(template["rows"][:IDENTITY_IMAGES], paths)]
    panels = [(f"search: {_who(search)}", [found.thumbnail(search_role, search["row"],
                                                            search.get("path"))]),
              (f"template: {_who(template)}", template_images)]
    accepted = "; above the threshold: a false positive" if search["score"] > threshold else ""
    return Card(panels, f"score {search['score']:.4f}{accepted}")


def _records(result, key, is_record, found):
    """The result's `key` ({"all": [...], "groups": {name: [...]}}) when well formed, else None
    with a note (absent: an older file)."""
    value = result.data.get(key)
    if value is None:
        found.say(f"nothing from '{key}': the result does not record it (an older file)")
        return None
    lists = [value.get("all")] + list((value.get("groups") or {}).values()) \
        if isinstance(value, dict) and isinstance(value.get("groups", {}), dict) else [None]
    if not all(isinstance(part, list) and all(map(is_record, part)) for part in lists):
        found.say(f"nothing from '{key}': it is not as mfftools writes it")
        return None
    return {"all": value["all"], "groups": value.get("groups") or {}}


def _is_row(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_score(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_pair(record):
    return (isinstance(record, dict) and _is_score(record.get("score"))
            and isinstance(record.get("rows"), list) and len(record["rows"]) == 2
            and all(map(_is_row, record["rows"]))
            and all(record.get(key) is None or (isinstance(record[key], list)
                                                and len(record[key]) == 2)
                    for key in ("identity", "identity_name", "path", "group")))


def _is_search(record):
    template = record.get("template") if isinstance(record, dict) else None
    return (isinstance(template, dict) and _is_score(record.get("score"))
            and _is_row(record.get("row")) and isinstance(template.get("rows"), list)
            and all(map(_is_row, template["rows"])))


class _ResultImages:
    """The embeddings file(s) of one result (labels and paths: `file`) and, when wanted, the
    thumbnails of their rows; what could not be read is collected as notes (`finish`).

    Roles: None for a result of one file; "gallery" and "probes" for 1:N on two files."""

    def __init__(self, result, wanted):
        self.result, self.wanted = result, wanted
        self._notes, self._failed = [], []
        self._files = self._open()
        self._sources, self._thumbnails = {}, {}

    @property
    def readable(self):
        """Whether the result's embeddings files were read (labels and paths)."""
        return bool(self._files)

    def say(self, reason):
        self._notes.append(f"Gallery of {self.result.model} ({self.result.protocol}): {reason}.")

    def file(self, role):
        return self._files.get(role)

    def sources(self):
        """The sources of the result's embeddings files, as they record them."""
        return [source_of(file) for file in self._files.values() if source_of(file)]

    def thumbnail(self, role, row, where=None):
        """The Thumbnail of a row of the role's file: named by its path (the file's, else
        `where`), its JPEG when images are wanted and can be read."""
        embeddings = self.file(role)
        inside = row < embeddings.n_rows  # the results' rows, unless edited by hand
        if inside and embeddings.image_paths is not None:
            where = str(embeddings.image_paths[row])
        where = where or f"row {row}"
        if not (self.wanted and inside):
            return Thumbnail(where)
        if (role, row) not in self._thumbnails:
            self._thumbnails[role, row] = self._read(role, row)
        return Thumbnail(where, self._thumbnails[role, row])

    def finish(self):
        """The notes: what could not be read, and why."""
        if self._failed:
            self.say(f"{len(self._failed)} images could not be read and are named by their path "
                     f"instead (the first: {self._failed[0]})")
        return self._notes

    def _read(self, role, row):
        if role not in self._sources:
            try:
                self._sources[role] = SourceImages(self._files[role])
            except (MfftoolsError, OSError) as error:
                self._sources[role] = None
                self.say(f"no thumbnails: {error}")
        if self._sources[role] is None:
            return None
        try:
            return self._sources[role].thumbnail(row)
        except (MfftoolsError, OSError) as error:
            self._failed.append(str(error))
            return None

    def _open(self):
        """{role: Embeddings} of the files the result's `source` names, or {} (with a note)
        when they are not recorded, cannot be read, or are not the ones it was computed on."""
        source = self.result.data.get("source")
        if isinstance(source, str):
            named = {None: source}
        elif isinstance(source, dict) and all(isinstance(source.get(role), str)
                                              for role in ("gallery", "probes")):
            named = {"gallery": source["gallery"], "probes": source["probes"]}
        else:
            self.say("left out: the result does not record its embeddings file ('source')")
            return {}
        files = {}
        for role, text in named.items():
            try:
                files[role] = open_embeddings(self._resolved(text), layout="images")
            except MfftoolsError as error:
                self.say(f"left out: {error}")
                return {}
        recorded = images_of(self.result)
        if recorded is not None:
            now = images_fingerprint(*files.values())
            differ = [key for key in ("n", "paths_sha256", "identities_sha256")
                      if recorded.get(key) is not None and recorded.get(key) != now.get(key)]
            if differ:
                self.say(f"left out: {', '.join(named.values())} is not what the result was "
                         f"computed on (its {', '.join(differ)} differ)")
                return {}
        return files

    def _resolved(self, text):
        """A recorded path: as written (absolute, or relative to the current folder), else
        beside the results file."""
        path = Path(text)
        if path.is_absolute() or path.exists():
            return path
        beside = self.result.path.parent / path
        return beside if beside.exists() else path
