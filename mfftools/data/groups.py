"""Group names a user asks for (`--groups A,B`), checked against those a source holds."""

from mfftools.errors import MfftoolsError


def select_groups(available, requested, where):
    """The requested group names, in the source's order; an error naming any it does not hold.

    `where` names the source in the message; `requested` None selects every group.
    """
    available = list(available)
    if requested is None:
        return available
    missing = [name for name in requested if name not in available]
    if missing:
        raise MfftoolsError(
            f"{where}: no group {', '.join(missing)} (it holds {', '.join(available)})"
        )
    chosen = set(requested)
    return [name for name in available if name in chosen]
