"""Reading and writing table directories (Parquet or CSV), atomically."""

from __future__ import annotations

import codecs
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

FORMATS = ("parquet", "csv")


def atomic_write(path: Path, write: callable) -> None:  # type: ignore[valid-type]
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see half a file.
    The file gets the permissions a plain ``open`` would give it (the temporary file's are
    private to its owner)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@functools.cache
def _umask() -> int:
    mask = os.umask(0o077)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Write one table as Parquet or CSV (by suffix), atomically."""
    if path.suffix == ".parquet":
        atomic_write(path, lambda p: df.to_parquet(p, index=False, engine="pyarrow"))
    elif path.suffix == ".csv":
        atomic_write(path, lambda p: df.to_csv(p, index=False, date_format="%Y-%m-%dT%H:%M:%S"))
    else:
        raise ValueError(f"unsupported table format: {path.name} (use .parquet or .csv)")


def write_tables(
    tables: Mapping[str, pd.DataFrame], directory: Path, formats: Iterable[str] = ("parquet",)
) -> list[Path]:
    """Write every table in each format; returns the paths written."""
    written = []
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")
        for name, df in tables.items():
            path = Path(directory) / f"{name}.{fmt}"
            write_table(df, path)
            written.append(path)
    return written


def find_table(directory: Path, name: str) -> Path | None:
    """The file holding table ``name`` in ``directory`` (Parquet preferred over CSV)."""
    for fmt in FORMATS:
        path = Path(directory) / f"{name}.{fmt}"
        if path.exists():
            return path
    return None


SEPARATORS = (",", ";", "\t", "|")  # Excel writes ";" where "," is the decimal mark


def csv_options(path: Path) -> dict[str, str]:
    """How to read a CSV file: its separator, the first of ``SEPARATORS`` in its header line
    (by count), and its encoding, UTF-8 (a BOM is fine) or else Windows-1252, Excel's "CSV"
    outside its "CSV UTF-8", judged on the first 64 KiB."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
        encoding = "utf-8-sig"
    except UnicodeDecodeError:
        text, encoding = head.decode("cp1252", errors="replace"), "cp1252"
    header = text.splitlines()[0] if text else ""
    sep = max(SEPARATORS, key=lambda s: (header.count(s), s == ","))
    return {"sep": sep, "encoding": encoding}


def read_table(path: Path) -> pd.DataFrame:
    """Read a table file as-is. CSV columns stay strings so validation can name bad cells;
    the separator and encoding are the file's (``csv_options``)."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    options = csv_options(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], **options)


def file_digest(paths: Iterable[Path]) -> str:
    """SHA-256 over the files' names and bytes: the dataset digest logged with experiments."""
    h = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def write_json(obj: object, path: Path) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=2, default=str) + "\n"))


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def check_writable_dir(path: Path, what: str) -> Path:
    """``path`` as a directory this process can write into (created if missing), or an
    ``OSError`` whose message names ``what`` and the problem."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OSError(f"{what} {path} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OSError(f"{what} {path} cannot be written to ({reason})") from None
    return path
