"""The output folders commands replace, described for `autotune.atomic.atomic_dir`.

Kept apart from the writers (analytics.profile_io) so that `autotune analyze` can check its --out before it
imports the statistics stack (numpy, pyarrow) and reads the logs. tests/test_outputs.py checks the names
against the writers' constants.
"""

from __future__ import annotations

from autotune.atomic import OutputKind, OwnedFolder

#: A workload profile folder (analytics.profile_io: PROFILE_FILE, COUNTS_FILE; analytics.plots: plots/).
PROFILE_OUTPUT = OutputKind(
    command="analyze",
    option="--out",
    marker="profile.json",
    files=("profile.json", "counts.parquet", "plots/coverage.png", "plots/frequency.png"),
)

#: Folders whose files belong to the command that wrote them: no single-file output (`export --out`,
#: `evaluate --write`) goes inside one. A search run is told by run.json (complete or interrupted), or by its
#: journal when it was stopped before it stored anything (autotune.search.runstore); a workload profile by
#: profile.json beside counts.parquet.
OWNED_FOLDERS = (
    OwnedFolder(what="the run", command="search", markers=("run.json",)),
    OwnedFolder(what="the interrupted run", command="search", markers=("study.journal",)),
    OwnedFolder(what="the profile", command="analyze", markers=("profile.json", "counts.parquet")),
)


def is_mapping_document(doc: object) -> bool:
    """Whether `doc` is a mapping as `autotune export --format json` and `evaluate --write` write it (the mapping
    schema, and not an export of another format, which carries a 'format' field)."""
    from autotune.model.mapping import mapping_schema

    if not isinstance(doc, dict) or "format" in doc:
        return False
    import jsonschema

    return jsonschema.Draft202012Validator(mapping_schema()).is_valid(doc)
