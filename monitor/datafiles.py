"""Reading reference and current data files (CSV, Parquet, JSON lines) into data frames."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: File suffixes understood, by format.
FORMATS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


class InputError(ValueError):
    """A data file is missing, unreadable or unusable; the message is one sentence for the user."""


def read_table(path: str | Path, role: str = "data") -> pd.DataFrame:
    """Return the rows of a CSV, Parquet or JSON-lines file as a data frame.

    The format comes from the suffix (``.csv``, ``.parquet``/``.pq``,
    ``.jsonl``/``.ndjson``/``.json``). ``role`` ("reference", "current") names
    the file in error messages. Raises :class:`InputError` for a missing file,
    an unknown suffix, an unparsable file or one without rows or columns.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{role} file not found: {file}")
    fmt = FORMATS.get(file.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(FORMATS))
        raise InputError(f"{role} file {file} has an unknown format; use one of {known}")
    try:
        if fmt == "csv":
            frame = pd.read_csv(file)
        elif fmt == "parquet":
            frame = pd.read_parquet(file)
        else:
            frame = pd.read_json(file, lines=True)
    except Exception as exc:  # every parser error becomes one clear sentence
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read {role} file {file} as {fmt}: {reason}") from exc
    if frame.shape[1] == 0:
        raise InputError(f"{role} file {file} has no columns")
    if frame.shape[0] == 0:
        raise InputError(f"{role} file {file} has no rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame
