"""Reading and writing table directories (Parquet or CSV), atomically."""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import json
import os
import re
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
_BLOCK = 1 << 20
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]+")  # a UTF-8 letter beyond ASCII


def csv_encoding(path: Path) -> str:
    """``utf-8-sig`` where the whole file is UTF-8 (a BOM is fine), else ``cp1252`` (Excel's
    plain "CSV") where it holds no UTF-8 letter at all; anything else (UTF-16, UTF-8 mixed
    with another encoding, bytes no encoding here reads) is a ``ValueError`` saying so."""
    with open(path, "rb") as f:
        first = f.read(2)
        if first in (b"\xff\xfe", b"\xfe\xff"):
            raise ValueError("UTF-16 text (Excel's 'Unicode Text'): save it as 'CSV UTF-8'")
        f.seek(0)
        decoder, utf8, offset = codecs.getincrementaldecoder("utf-8")(), False, 0
        try:
            while block := f.read(_BLOCK):
                decoder.decode(block)
                offset += len(block)
            decoder.decode(b"", final=True)
            return "utf-8-sig"
        except UnicodeDecodeError:
            pass
        f.seek(0)
        while block := f.read(_BLOCK):
            if _UTF8_MULTIBYTE.search(block):
                utf8 = True
                break
    if utf8:
        raise ValueError(
            "UTF-8 mixed with another encoding (near byte "
            f"{offset:,}): save it again as 'CSV UTF-8'"
        )
    return "cp1252"


def csv_separator(path: Path, encoding: str) -> str:
    """The one of ``SEPARATORS`` that splits the file's first lines into the same number of
    fields as its header, the most of them (a comma first among equals); quoted cells may
    hold any of them."""
    with open(path, encoding=encoding, errors="replace", newline="") as f:
        sample = f.read(1 << 16)
    lines = sample.splitlines(keepends=True)
    if len(sample) == 1 << 16 and len(lines) > 1:
        lines = lines[:-1]  # cut off mid-line
    best, fields = ",", 1
    for sep in SEPARATORS:
        try:
            rows = list(csv.reader(lines, delimiter=sep))
        except csv.Error:
            continue
        rows = rows[:-1] if len(rows) > 2 else rows  # the last may be cut mid-cell
        if rows and len(rows[0]) > fields and all(len(r) == len(rows[0]) for r in rows if r):
            best, fields = sep, len(rows[0])
    return best


def csv_options(path: Path) -> dict[str, str]:
    """How to read a CSV file: its encoding (``csv_encoding``) and separator
    (``csv_separator``)."""
    encoding = csv_encoding(path)
    return {"sep": csv_separator(path, encoding), "encoding": encoding}


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
