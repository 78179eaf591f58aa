"""Load the user's files into canonical, validated tables.

Formats (by file name): CSV (``.csv``, ``.tsv``, ``.txt``, optionally compressed ``.gz``,
``.bz2``, ``.xz``), Parquet (``.parquet``, ``.pq``) and Excel (``.xlsx``, ``.xlsm``, via
openpyxl). Text files and Excel sheets are read as text, so ids keep leading zeros
(``"00123"``); :mod:`segkit.core.schema` then coerces every column to its canonical dtype.

Column maps (``columns.<table>`` in the config) map canonical names to the file's names, e.g.
``{customer_id: "Customer ID", order_date: InvoiceDate}``. A canonical column that is not
mapped is taken from a file column of the same name (compared loosely: case, spaces, dashes
and dots do not matter, so ``Customer ID`` is found as ``customer_id``). Columns not named by
the contract are dropped; a mapping that names a column the file lacks is an error. For
transactions, ``country`` may be mapped too (the UCI Online Retail layout has the customer's
country on every line): it is kept as an extra column, from which the audit derives each
buyer's country when there is no customers file
(:meth:`segkit.data.engine.TransactionLog.derived_customers`).

Which tables are read here: customers and campaign files (customer-level) are loaded with
:func:`load_table`. The order lines of a run are read, typed and cleaned by DuckDB
(:class:`segkit.data.engine.TransactionLog`); this module only hands it what DuckDB cannot
read itself, the cells of an Excel workbook (:func:`read_cells`), and gives it the shared pieces
(options, column maps, delimiter sniffing, encodings). :func:`load_table` of a transactions file
serves the API (:func:`segkit.audit.run_audit` of frames) and tests.

Read options (``io`` section): ``date_format``, ``dayfirst``, ``delimiter`` (None = sniffed
among ``, ; tab |``), ``encoding`` (None = UTF-8; a file that starts with a
byte-order mark is read in the encoding the mark announces: UTF-8, UTF-16 or UTF-32, LE or BE),
``sheet_name`` (Excel; a sheet without the table's columns is an error naming the workbook's
sheets and those that have them), ``decimal`` (``"."`` by default; ``","`` for decimal-comma exports) and
``return_invoice_prefix`` (used by the audit, not here).

Rows that are empty in every column used are skipped (spreadsheets often save trailing empty
rows); ``frame.attrs["blank_rows"]`` counts them and ``attrs["blank_row_examples"]`` holds up to
five of their 0-based row positions. The returned frame's index is
the 0-based data row of the file, so ``segkit.core.errors.format_rows(frame.index[mask])`` names
rows as a spreadsheet shows them (header = row 1; for Parquet, counted the same way). Input
files are only read, never written.

Examples
--------
>>> from segkit.core.config import load_config
>>> tables = load_inputs(load_config())        # the bundled sample
>>> tables["transactions"].columns[:3].tolist()
['customer_id', 'order_date', 'order_id']
"""

from __future__ import annotations

import bz2
import codecs
import csv
import difflib
import functools
import gzip
import lzma
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from segkit.core.config import default_config, resolve_source, source_description, source_scheme
from segkit.core.errors import ConfigError, DataError
from segkit.core.schema import (
    TableSpec,
    check_columns,
    coerce_id,
    get_spec,
    normalize_name,
    validate,
)

__all__ = ["TEXT_SUFFIXES", "PARQUET_SUFFIXES", "EXCEL_SUFFIXES", "COMPRESSIONS", "DELIMITERS",
    "INPUT_TABLES", "IO_DEFAULTS", "read_options", "check_column_map", "resolve_columns", "file_sample",
    "sniff_delimiter", "BYTE_ORDER_MARKS", "bom_encoding", "text_encoding", "utf8_copy", "load_table", "read_cells",
    "canonical_cells", "typed_table", "config_file_hint", "read_ids", "load_inputs"]

TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
COMPRESSIONS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
DELIMITERS = (",", ";", "\t", "|")
INPUT_TABLES = ("transactions", "customers", "campaign")
IO_DEFAULTS: dict[str, Any] = {
    "date_format": None, "dayfirst": False, "delimiter": None, "encoding": None,
    "sheet_name": 0, "decimal": ".", "return_invoice_prefix": "C",
}
_SNIFF_BYTES = 64 * 1024


# ----------------------------------------------------------------------------------------------
# Options and column maps


def read_options(config: Mapping | None = None, overrides: Mapping | None = None) -> dict[str, Any]:
    """The effective read options: defaults < ``config["io"]`` < ``overrides``, checked.

    Examples
    --------
    >>> read_options(None, {"delimiter": ";"})["delimiter"]
    ';'
    >>> read_options(None, {"delimiter": ";;"})
    Traceback (most recent call last):
    ...
    segkit.core.errors.ConfigError: io.delimiter must be one character (e.g. ';' or '\\t'), not ';;'.
    """
    opts = dict(IO_DEFAULTS)
    known = [*IO_DEFAULTS, *(k for k in _shipped_io_keys() if k not in IO_DEFAULTS)]
    for given in ((config or {}).get("io") or {}, overrides or {}):
        unknown = [key for key in given if key not in known]
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), known, n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"Unknown io option {unknown[0]!r}{guess}. Known options: {', '.join(known)}.")
        opts.update(given)
    if opts["delimiter"] is not None and (not isinstance(opts["delimiter"], str) or len(opts["delimiter"]) != 1):
        raise ConfigError(f"io.delimiter must be one character (e.g. ';' or '\\t'), not {opts['delimiter']!r}.")
    if opts["encoding"] is not None:
        try:
            codecs.lookup(str(opts["encoding"]))
        except LookupError:
            raise ConfigError(f"io.encoding {opts['encoding']!r} is not a known encoding; "
                              "try 'utf-8', 'latin-1' or 'cp1252'.") from None
    if opts["decimal"] not in (".", ","):
        raise ConfigError(f"io.decimal must be '.' or ',', not {opts['decimal']!r}.")
    if not isinstance(opts["dayfirst"], bool):
        raise ConfigError(f"io.dayfirst must be true or false, not {opts['dayfirst']!r}.")
    return opts


@functools.lru_cache(maxsize=1)
def _shipped_io_keys() -> tuple[str, ...]:
    """Keys of the ``io`` section in segkit's shipped defaults (they are always accepted)."""
    return tuple((default_config().get("io") or {}).keys())


def check_column_map(table: str, columns: Mapping | None, config_hint: str = "") -> dict[str, str]:
    """Validate a canonical → user column map and drop unmapped (``null``/empty) entries.

    Examples
    --------
    >>> check_column_map("transactions", {"customer_id": "Customer ID", "channel": None})
    {'customer_id': 'Customer ID'}
    >>> check_column_map("customers", {"custmer_id": "id"})
    Traceback (most recent call last):
    ...
    segkit.core.errors.ConfigError: columns.customers: 'custmer_id' is not a canonical customers column (did you mean 'customer_id'?). ...
    """
    spec = get_spec(table)
    if columns is None:
        return {}
    if not isinstance(columns, Mapping):
        raise ConfigError(f"columns.{table}{config_hint} must map canonical names to your column names, "
                          f"not {type(columns).__name__}.")
    out: dict[str, str] = {}
    for canonical, user in columns.items():
        if canonical not in spec.known:
            close = difflib.get_close_matches(str(canonical), list(spec.known), n=1, cutoff=0.6)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"columns.{table}{config_hint}: {canonical!r} is not a canonical {table} column{guess}. "
                f"Keys are canonical names: {', '.join(spec.known)}; values are your file's column names.")
        if user is None or (isinstance(user, str) and not user.strip()):
            continue
        if not isinstance(user, (str, int)):
            raise ConfigError(f"columns.{table}.{canonical}{config_hint} must be a column name, not {user!r}.")
        out[canonical] = str(user).strip()
    return out


def resolve_columns(header: list[str], spec: TableSpec, mapping: Mapping[str, str], source: str,
                     config_hint: str) -> dict[str, int]:
    """Canonical name → position in ``header`` (mapped names first, then loose name matches)."""
    stripped = [str(h).strip() for h in header]
    exact = {}
    for pos, name in enumerate(stripped):
        exact.setdefault(name, pos)
    loose: dict[str, list[int]] = {}
    for pos, name in enumerate(stripped):
        loose.setdefault(normalize_name(name), []).append(pos)
    positions: dict[str, int] = {}
    for canonical, user in mapping.items():
        if user in exact:
            positions[canonical] = exact[user]
            continue
        hits = loose.get(normalize_name(user), [])
        if len(hits) == 1:
            positions[canonical] = hits[0]
            continue
        other = [d for d, name in ((";", "semicolon"), ("\t", "tab")) if d in stripped[0]]
        if len(stripped) <= 2 and other and user in stripped[0].split(other[0]):
            name = "semicolon" if other[0] == ";" else "tab"
            raise DataError(
                f"{source}: the header is read as {len(stripped)} column(s) whose name holds {name}s "
                f"({stripped[0][:60]!r} …): the file looks {name}-delimited, as a spreadsheet with European "
                f"settings re-saves a CSV, but was read with another delimiter. Set io.delimiter: {other[0]!r} in "
                f"the config{config_hint} (and check that amounts with a decimal comma are read), "
                f"or better, export the file again from the shop's admin and use it unchanged.")
        close = difflib.get_close_matches(user, stripped, n=3, cutoff=0.6)
        guess = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise DataError(
            f"{source}: columns.{spec.name}.{canonical}{config_hint} names column {user!r}, which is not in "
            f"the file.{guess} The file's columns are: {', '.join(map(repr, stripped))}. Fix the column map "
            f"(names must match the header, spaces and case aside).")
    taken = set(positions.values())
    for canonical in spec.known:
        if canonical in positions:
            continue
        if canonical in exact and exact[canonical] not in taken:
            positions[canonical] = exact[canonical]
        else:
            hits = [p for p in loose.get(canonical, []) if p not in taken]
            if len(hits) == 1:
                positions[canonical] = hits[0]
    try:
        check_columns(positions, spec, source, available=stripped, config_hint=config_hint)
    except DataError as exc:
        data_like = sum(bool(re.fullmatch(r"[-+]?[\d.,:/ ]+", name)) for name in stripped)
        if data_like * 2 >= len(stripped):
            raise DataError(f"{exc} (The first row looks like data, not column names: the file needs a "
                            "header row.)") from None
        raise
    return positions


# ----------------------------------------------------------------------------------------------
# Readers


def _kind(path: Path) -> tuple[str, str | None]:
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    compression = suffixes[-1] if suffixes and suffixes[-1] in COMPRESSIONS else None
    suffix = (suffixes[-2] if len(suffixes) == 2 else "") if compression else (suffixes[-1] if suffixes else "")
    if suffix in TEXT_SUFFIXES:
        return "text", compression
    if not compression and suffix in PARQUET_SUFFIXES:
        return "parquet", None
    if not compression and suffix in EXCEL_SUFFIXES:
        return "excel", None
    fix = ("Open it in Excel and save as .xlsx (or export CSV)." if suffix == ".xls"
           else "Rename or convert the file.")
    kind = "".join(path.suffixes) or "(no extension)"
    raise DataError(f"{path}: unsupported file type {kind!r}. Supported: .csv/.tsv/.txt (optionally .gz, "
                    f".bz2, .xz), .parquet/.pq, .xlsx/.xlsm. {fix}")


def file_sample(path: Path, compression: str | None) -> bytes:
    opener = COMPRESSIONS.get(compression, open)
    try:
        with opener(path, "rb") as fh:
            return fh.read(_SNIFF_BYTES)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise DataError(f"{path}: cannot be decompressed as {compression} ({exc}). "
                        "Check that the file is complete and really compressed that way.") from None


def sniff_delimiter(text: str) -> str | None:
    """The delimiter among ``, ; tab |`` that splits the first lines into the most equal columns.

    Returns None when no candidate gives more than one column.

    Examples
    --------
    >>> sniff_delimiter("a;b;c\\n1;2,5;3\\n")
    ';'
    >>> sniff_delimiter("a,b\\n1,2\\n")
    ','
    """
    lines = text.splitlines()
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # last line of a sample may be cut
    lines = [line for line in lines[:50] if line.strip()]
    best, best_score = None, (0, 0)
    for cand in DELIMITERS:
        counts = [len(row) for row in csv.reader(lines, delimiter=cand)]
        if not counts or counts[0] < 2:
            continue
        consistent = sum(c == counts[0] for c in counts) / len(counts)
        score = (consistent, counts[0])
        if score > best_score:
            best, best_score = cand, score
    return best


# Byte-order marks, longest first (the UTF-32 LE mark starts with the UTF-16 LE one).
BYTE_ORDER_MARKS: tuple[tuple[bytes, str, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32 LE"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32 BE"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16 LE"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16 BE"),
)


def bom_encoding(head: bytes) -> tuple[str, str] | None:
    """The Python codec and the name of the byte-order mark ``head`` starts with, or None.

    The codecs (``utf-8-sig``, ``utf-16``, ``utf-32``) read the mark, take the byte order from
    it and drop it from the text.

    Examples
    --------
    >>> bom_encoding("id\\n".encode("utf-16"))[0], bom_encoding(codecs.BOM_UTF32_LE + b"i")
    ('utf-16', ('utf-32', 'UTF-32 LE'))
    >>> bom_encoding(b"id,amount\\n") is None
    True
    """
    for mark, codec, name in BYTE_ORDER_MARKS:
        if head.startswith(mark):
            return codec, name
    return None


def text_encoding(path: str | Path, configured: str | None = None) -> str:
    """The Python codec to read a text file with: its byte-order mark, else ``io.encoding``, else UTF-8.

    Parameters
    ----------
    path : str or Path
        A text file, optionally ``.gz``/``.bz2``/``.xz`` compressed (the mark is looked for in
        the decompressed bytes).
    configured : str, optional
        ``io.encoding`` of the config (None = not set).

    Raises
    ------
    DataError
        The byte-order mark contradicts ``configured`` (e.g. a UTF-16 file with
        ``io.encoding: latin-1``), or the file has no mark but looks like UTF-16/UTF-32 text
        (many zero bytes) and ``io.encoding`` is not set.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_bytes("customer_id\\n7\\n".encode("utf-16"))
    >>> text_encoding(p), text_encoding(p, "UTF-16")
    ('utf-16', 'utf-16')
    """
    path = Path(path)
    head = file_sample(path, _kind(path)[1])
    found = bom_encoding(head)
    if found is None:
        if configured is None and head and head.count(0) * 4 >= len(head):
            raise DataError(
                f"{path}: looks like UTF-16 or UTF-32 text without a byte-order mark (every second or fourth "
                "byte is zero). Set io.encoding in the config to the file's encoding, e.g. 'utf-16-le' or "
                "'utf-16-be', or save the file as UTF-8.")
        return configured or "utf-8-sig"
    codec, name = found
    if configured is not None and not codecs.lookup(str(configured)).name.startswith(codec[:6]):
        raise DataError(f"{path}: starts with a {name} byte-order mark, so it is {name.split()[0]} text, but "
                        f"io.encoding is {configured!r}. Remove io.encoding from the config (segkit reads the "
                        f"byte-order mark) or set it to {codec!r}.")
    return codec


def utf8_copy(path: str | Path, encoding: str, dest: str | Path) -> Path:
    """Write a UTF-8 copy of a text file (decompressed, line endings kept) to ``dest``.

    For readers that take UTF-8 only (DuckDB's CSV reader for UTF-16/UTF-32 input); the input
    is only read. Decoding is incremental, so memory stays small whatever the file size.

    Raises
    ------
    DataError
        A byte that is not valid in ``encoding`` (with its line, as :func:`load_table` says).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "t.csv").write_bytes("id,city\\n1,Köln\\n".encode("utf-16"))
    >>> utf8_copy(folder / "t.csv", "utf-16", folder / "t-utf8.csv").read_text(encoding="utf-8")
    'id,city\\n1,Köln\\n'
    """
    path, dest = Path(path), Path(dest)
    compression = _kind(path)[1]
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with COMPRESSIONS.get(compression, open)(path, "rb") as src, open(dest, "w", encoding="utf-8",
                                                                           newline="") as out:
            while chunk := src.read(1 << 22):
                out.write(decoder.decode(chunk))
            out.write(decoder.decode(b"", final=True))
    except UnicodeDecodeError as exc:
        dest.unlink(missing_ok=True)
        raise _decode_error(path, compression, encoding, exc) from None
    return dest


def _encoding_name(encoding: str) -> str:
    return "UTF-8" if codecs.lookup(encoding).name.startswith("utf-8") else encoding


def _decode_error(path: Path, compression: str | None, encoding: str, exc: UnicodeDecodeError) -> DataError:
    """A message naming the line of the first byte that is not valid in ``encoding``."""
    opener = COMPRESSIONS.get(compression, open)
    decoder = codecs.getincrementaldecoder(encoding)()
    line, offset = 1, 0
    with opener(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                bad = chunk[max(err.start - 20, 0): err.end + 20]
                line += chunk[: err.start].count(b"\n")
                snippet = bad.decode(encoding, errors="replace").replace("\n", " ")
                return DataError(
                    f"{path}: is not valid {_encoding_name(encoding)} text: byte {chunk[err.start:err.end]!r} "
                    f"at byte {offset + err.start} (line {line}, near {snippet!r}). Set io.encoding in the "
                    "config to the file's encoding, e.g. 'latin-1' or 'cp1252' for Western European exports.")
            line += chunk.count(b"\n")
            offset += len(chunk)
    return DataError(f"{path}: is not valid {_encoding_name(encoding)} text ({exc.reason}). Set io.encoding "
                     "in the config, e.g. 'latin-1' or 'cp1252'.")


def _read_text(path: Path, compression: str | None, spec: TableSpec, mapping: Mapping[str, str],
               opts: Mapping[str, Any], config_hint: str) -> tuple[pd.DataFrame, dict[str, int], list[str]]:
    sample = file_sample(path, compression)
    encoding = text_encoding(path, opts["encoding"])
    if not sample.strip(b"\x00 \t\r\n" + codecs.BOM_UTF8 + codecs.BOM_UTF16_LE + codecs.BOM_UTF16_BE):
        raise DataError(f"{path}: the file is empty. Export the {spec.name} table again "
                        "(with a header row and data rows).")
    text = sample.decode(encoding, errors="replace")
    sniffed = sniff_delimiter(text)
    delimiter = opts["delimiter"] or sniffed or ("\t" if ".tsv" in [s.lower() for s in path.suffixes] else ",")
    kw = dict(sep=delimiter, dtype=str, keep_default_na=False, na_values=[], encoding=encoding,
              skip_blank_lines=False, compression={".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}.get(compression))
    try:
        header = list(pd.read_csv(path, nrows=0, **kw).columns)
        if len(header) == 1:
            _raise_if_other_delimiter(path, text, delimiter, bool(opts["delimiter"]))
        positions = resolve_columns(header, spec, mapping, str(path), config_hint)
        # All columns are read (not usecols): only then does pandas report rows with too many fields.
        raw = pd.read_csv(path, **kw)
        if not isinstance(raw.index, pd.RangeIndex):
            raw = _drop_trailing_delimiter(path, raw, header, delimiter)
    except UnicodeDecodeError as exc:
        raise _decode_error(path, compression, encoding, exc) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (no header row). Export the {spec.name} table again "
                        "with a header row.") from None
    except pd.errors.ParserError as exc:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        detail = (f"line {match.group(2)} has {match.group(3)} fields but the header has {match.group(1)}"
                  if match else str(exc).strip())
        raise DataError(
            f"{path}: cannot be split into columns: {detail}. A value probably contains the delimiter "
            f"{delimiter!r} without quotes (or io.delimiter is wrong): put such values in double quotes, "
            "or set io.delimiter in the config.") from None
    used = sorted(set(positions.values()))
    raw = raw.iloc[:, used]
    raw.columns = used
    return raw, positions, header


def _raise_if_other_delimiter(path: Path, text: str, delimiter: str, was_set: bool) -> None:
    """A one-column header that contains another delimiter means the delimiter is wrong."""
    first = text.splitlines()[0] if text.splitlines() else ""
    other = [d for d in DELIMITERS if d != delimiter and d in first]
    if other:
        name = "tab" if other[0] == "\t" else repr(other[0])
        raise DataError(
            f"{path}: only one column was found with delimiter {delimiter!r}; the header {first[:80]!r} "
            f"looks like {name}-separated. Set io.delimiter: {other[0]!r} in the config"
            f"{' (or remove io.delimiter to let segkit detect it)' if was_set else ''}.")


def _drop_trailing_delimiter(path: Path, raw: pd.DataFrame, header: list[str], delimiter: str) -> pd.DataFrame:
    """Every data row has more fields than the header: fine when the extra field is empty
    (a delimiter at the end of each line), an error otherwise (values would shift columns)."""
    fields = raw.reset_index()  # pandas moved the first field into the index
    if fields.shape[1] == len(header) + 1 and fields.iloc[:, -1].str.strip().eq("").all():
        fields = fields.iloc[:, : len(header)]
        fields.columns = raw.columns
        return fields
    raise DataError(
        f"{path}: every data row has more fields than the header ({len(header)} names). A header name is "
        f"missing, or values contain the delimiter {delimiter!r} without quotes: fix the header row or "
        "quote such values.")


def _read_parquet(path: Path, spec: TableSpec, mapping: Mapping[str, str],
                  config_hint: str) -> tuple[pd.DataFrame, dict[str, int], list[str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        header = list(pq.read_schema(path).names)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: is not a readable Parquet file ({exc}). It may be truncated or another "
                        "format renamed to .parquet: export it again, or give it its real extension.") from None
    positions = resolve_columns(header, spec, mapping, str(path), config_hint)
    used = sorted(set(positions.values()))
    try:
        raw = pd.read_parquet(path, columns=[header[p] for p in used])
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: is not a readable Parquet file ({exc}). Export it again.") from None
    raw.columns = used
    return raw.reset_index(drop=True), positions, header


def _read_excel(path: Path, spec: TableSpec, mapping: Mapping[str, str], opts: Mapping[str, Any],
                config_hint: str) -> tuple[pd.DataFrame, dict[str, int], list[str]]:
    sheet = opts["sheet_name"]
    try:
        book = pd.ExcelFile(path, engine="openpyxl")
    except (zipfile.BadZipFile, OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: is not a readable .xlsx workbook ({exc}). Open it in Excel and save it "
                        "again as .xlsx, or export CSV.") from None
    with book:
        names = book.sheet_names
        if (isinstance(sheet, int) and not 0 <= sheet < len(names)) or (
                isinstance(sheet, str) and sheet not in names):
            raise DataError(f"{path}: has no sheet {sheet!r}; its sheets are {', '.join(map(repr, names))}. "
                            "Set io.sheet_name in the config to one of these (a name or a 0-based number).")
        header = [str(c) for c in pd.read_excel(book, sheet_name=sheet, nrows=0).columns]
        if not header:
            raise DataError(f"{path}: sheet {sheet!r} is empty. Put the {spec.name} table (header row first) "
                            "on that sheet, or set io.sheet_name.")
        try:
            positions = resolve_columns(header, spec, mapping, str(path), config_hint)
        except DataError as exc:
            if len(names) < 2:
                raise
            raise DataError(_other_sheets_hint(book, names, sheet, exc, spec, mapping, str(path))) from None
        used = sorted(set(positions.values()))
        # as for CSV, no text means missing by itself ("n/a", "NA", "null" are cells' text); empty cells are ""
        raw = pd.read_excel(book, sheet_name=sheet, usecols=used, dtype=str, keep_default_na=False, na_values=[])
    raw.columns = used
    return raw, positions, header


def _other_sheets_hint(book: pd.ExcelFile, names: list[str], sheet: int | str, exc: DataError, spec: TableSpec,
                       mapping: Mapping[str, str], source: str) -> str:
    """The message for a sheet without the table's columns in a workbook of several sheets: which
    sheet was read (``io.sheet_name``), the workbook's sheets, and those that have the columns.
    A sheet is never picked silently: the message says what to set."""
    read = names[sheet] if isinstance(sheet, int) else sheet
    setting = f"io.sheet_name = {sheet!r}" + (" (the first sheet)" if sheet == 0 else "")
    fitting = []
    for name in names:
        if name == read:
            continue
        header = [str(c) for c in pd.read_excel(book, sheet_name=name, nrows=0).columns]
        try:
            resolve_columns(header, spec, mapping, source, "")
        except DataError:
            continue
        fitting.append(name)
    listing = ", ".join(map(repr, names))
    if len(fitting) == 1:
        fix = (f"Sheet {fitting[0]!r} has the {spec.name} columns: set io.sheet_name: {fitting[0]!r} in the config "
               "(or move that sheet first).")
    elif fitting:
        fix = (f"Sheets {', '.join(map(repr, fitting))} have the {spec.name} columns: set io.sheet_name in the "
               "config to the one to read.")
    else:
        fix = ("No sheet has them: set io.sheet_name in the config to the sheet with the table (a name or a "
               "0-based number), or fix the column map.")
    detail = str(exc).removeprefix(f"{source}: ").replace("The file's columns are", "Its columns are")
    if fitting:  # the column map is probably right: the advice is the sheet, not the map
        detail = detail.split(" Map ")[0]
    return f"{source}: sheet {read!r} was read ({setting}; the workbook's sheets are {listing}): {detail} {fix}"


def load_table(path: str | Path, table: str, columns: Mapping[str, str] | None = None,
               io_options: Mapping[str, Any] | None = None, config: Mapping | None = None) -> pd.DataFrame:
    """Read one user file as a canonical, validated table.

    Parameters
    ----------
    path : str or Path
        CSV/TSV (optionally compressed), Parquet or Excel file.
    table : {"transactions", "customers", "campaign"}
        Which canonical table the file holds.
    columns : mapping, optional
        Canonical → file column names; default ``config["columns"][table]``.
    io_options : mapping, optional
        Read options overriding ``config["io"]`` (see the module docstring).
    config : mapping, optional
        A loaded config (:func:`segkit.core.config.load_config`), for its ``columns`` and ``io``.

    Returns
    -------
    DataFrame
        The table's canonical columns and dtypes (:func:`segkit.core.schema.validate`), indexed by
        0-based data row of the file. ``attrs``: ``source`` (the path), ``columns`` (canonical →
        file column used), ``absent_columns``, ``blank_rows`` (count of skipped empty rows),
        ``blank_row_examples``.

    Raises
    ------
    DataError
        The file is missing, unreadable, empty, or breaks the table contract; the message names
        the file, the column, example rows and what to change.
    ConfigError
        The column map or ``io`` options are invalid.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "c.csv").write_text("Id;Opt in\\n00123;yes\\n 12346.0 ;n\\n")
    >>> out = load_table(folder / "c.csv", "customers", columns={"customer_id": "Id", "email_opt_in": "Opt in"})
    >>> out[["customer_id", "email_opt_in"]]
      customer_id  email_opt_in
    0       00123          True
    1       12346         False
    """
    cells = read_cells(path, table, columns, io_options, config)
    return typed_table(cells, table, read_options(config, io_options))


def typed_table(cells: pd.DataFrame, table: str, opts: Mapping[str, Any]) -> pd.DataFrame:
    """:func:`segkit.core.schema.validate` of cells from :func:`canonical_cells`, named as their
    ``attrs["source"]`` and the file's column names, read with the ``io`` options ``opts``
    (:func:`read_options`); the result keeps the cells' ``attrs``."""
    out = validate(cells, table, source=cells.attrs["source"], labels=cells.attrs["columns"],
                   date_format=opts["date_format"], dayfirst=opts["dayfirst"], decimal=opts["decimal"])
    out.attrs.update(cells.attrs)
    return out


def read_cells(path: str | Path, table: str, columns: Mapping[str, str] | None = None,
               io_options: Mapping[str, Any] | None = None, config: Mapping | None = None) -> pd.DataFrame:
    """The cells of one user file under canonical column names, not yet typed.

    What :func:`load_table` reads before :func:`segkit.core.schema.validate` types it: the
    columns the table uses (column map and loose name matching as there), as the file holds
    them (text for CSV and Excel, Parquet's own types), indexed by the 0-based data row, blank
    rows skipped. For the transactions of a run, :class:`segkit.data.engine.TransactionLog`
    reads the files DuckDB cannot read (Excel workbooks) through this and types the cells in SQL
    by the rules it applies to CSV. Parameters and errors as for :func:`load_table`; ``attrs``:
    ``source``, ``columns`` (canonical → the file's column name), ``blank_rows``,
    ``blank_row_examples``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("Kunde;Datum;Betrag\\n 007 ;31.12.2024;1,50\\n")
    >>> cells = read_cells(p, "transactions", {"customer_id": "Kunde", "order_date": "Datum", "amount": "Betrag"})
    >>> cells.iloc[0].tolist(), cells.attrs["columns"]["amount"]
    ([' 007 ', '31.12.2024', '1,50'], 'Betrag')
    """
    path = Path(path)
    spec = get_spec(table)
    config_hint = config_file_hint(config)
    opts = read_options(config, io_options)
    if columns is None:
        columns = ((config or {}).get("columns") or {}).get(table)
    mapping = check_column_map(table, columns, config_hint)
    kind, compression = _kind(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise DataError(f"{path}: the {table} file {what}. Check data.{table} in the config{config_hint} "
                        "(relative paths are resolved against the config file's folder).")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes). Export the {table} table again.")
    if kind == "text":
        raw, _, header = _read_text(path, compression, spec, mapping, opts, config_hint)
    elif kind == "parquet":
        raw, _, header = _read_parquet(path, spec, mapping, config_hint)
    else:
        raw, _, header = _read_excel(path, spec, mapping, opts, config_hint)
    raw.columns = [header[position] for position in raw.columns]  # the columns kept, under the file's names
    return canonical_cells(raw, table, str(path), mapping, config_hint)


def canonical_cells(raw: pd.DataFrame, table: str, source: str, columns: Mapping[str, str] | None = None,
                    config_hint: str = "") -> pd.DataFrame:
    """A table's cells as a file holds them → the same cells under canonical names, blank rows skipped.

    The engine-independent part of reading a customers, campaign or transactions file, shared by the
    local reader (:func:`read_cells`) and Spark's (:func:`segkit.data.spark_audit.load_spark_table`):
    the column map and loose name matching (:func:`resolve_columns`), the refusal of a table without
    rows, and the skipping of rows empty in every column used.

    Parameters
    ----------
    raw : DataFrame
        The cells as read (text for CSV and Excel, the file's own types for Parquet): columns named as in
        the file's header, in header order (every column, or those a reader kept after
        :func:`resolve_columns` of the whole header; names may repeat), index = the 0-based data row of
        each row in the file (or in the concatenation of a source's files, in file order).
    table : {"transactions", "customers", "campaign"}
        Which canonical table the cells hold.
    source : str
        How messages name the file (its path, or the URI or ``table:name`` as the user wrote it).
    columns : mapping, optional
        Canonical → file column names (``columns.<table>`` of the config), checked by :func:`check_column_map`.
    config_hint : str
        Where the config is, for messages (``" (in shop.yml)"``).

    Returns
    -------
    DataFrame
        The columns the table uses, under canonical names, index as ``raw``'s without the blank rows;
        ``attrs``: ``source``, ``columns`` (canonical → the file's column name), ``blank_rows`` (count),
        ``blank_row_examples`` (up to five 0-based rows).

    Raises
    ------
    DataError
        A required column is missing (or a mapped one is not in the file), or no row has data.

    Examples
    --------
    >>> raw = pd.DataFrame({"Kunde": ["7", "", "8"], "Notiz": ["a", "b", ""]})
    >>> cells = canonical_cells(raw, "customers", "c.csv", {"customer_id": "Kunde"})
    >>> cells["customer_id"].tolist(), cells.attrs["blank_rows"], cells.attrs["blank_row_examples"]
    (['7', '8'], 1, [1])
    """
    spec = get_spec(table)
    mapping = check_column_map(table, columns, config_hint)
    header = [str(name) for name in raw.columns]
    positions = resolve_columns(header, spec, mapping, source, config_hint)
    if len(raw) == 0:
        raise DataError(f"{source}: has a header but no data rows. Export the {table} table with its rows.")
    used = sorted(set(positions.values()))
    kept = raw.iloc[:, used]
    kept.columns = used
    kept, blank = _drop_blank_rows(kept)
    if len(kept) == 0:
        raise DataError(f"{source}: every data row is empty in the columns segkit uses. "
                        f"Export the {table} table with its rows.")
    frame = pd.DataFrame({canonical: kept[pos] for canonical, pos in positions.items()}, index=kept.index)
    frame.attrs.update(source=source, columns={canonical: header[pos].strip() for canonical, pos in positions.items()},
                       blank_rows=len(blank), blank_row_examples=[int(r) for r in blank[:5]])
    return frame


def config_file_hint(config: Mapping | None) -> str:
    """`` (in <config file name>)`` for messages, or nothing for a config not read from a file.

    Examples
    --------
    >>> config_file_hint({"_source": "/shop/shop.yml"}), config_file_hint({})
    (' (in shop.yml)', '')
    """
    source = (config or {}).get("_source")
    return f" (in {Path(source).name})" if source else ""


def read_ids(path: str | Path, table: str, config: Mapping | None = None) -> pd.Series:
    """The customer ids in one user file, read without checking the rest of the table.

    Only the ``customer_id`` column (as mapped by ``columns.<table>`` of ``config``) is resolved,
    and its cells are made ids as :func:`load_table` makes them
    (:func:`segkit.core.schema.coerce_id`); duplicates, missing columns elsewhere or bad dates do
    not stop it. For the privacy check of a run whose audit failed, which must know the ids the
    error may name although the file breaks the table contract.

    Returns
    -------
    Series
        The distinct ids (``string``), without missing values.

    Raises
    ------
    DataError
        The file or its id column cannot be read.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.csv"
    >>> _ = p.write_text("Kunde;Land\\nC1;DE\\nC1;FR\\n 00123 ;\\n")
    >>> read_ids(p, "customers", {"columns": {"customers": {"customer_id": "Kunde"}}}).tolist()
    ['C1', '00123']
    """
    path = Path(path)
    full = get_spec(table)
    spec = TableSpec(name=full.name, required=("customer_id",), dtypes={"customer_id": full.dtypes["customer_id"]})
    mapped = ((config or {}).get("columns") or {}).get(table) or {}
    mapping = {"customer_id": mapped["customer_id"]} if isinstance(mapped, Mapping) and "customer_id" in mapped else {}
    kind, compression = _kind(path)
    if kind == "text":
        raw, positions, _ = _read_text(path, compression, spec, mapping, read_options(config), "")
    elif kind == "parquet":
        raw, positions, _ = _read_parquet(path, spec, mapping, "")
    else:
        raw, positions, _ = _read_excel(path, spec, mapping, read_options(config), "")
    ids = coerce_id(raw[positions["customer_id"]].astype("string"))
    return ids.dropna().drop_duplicates().reset_index(drop=True)


def _drop_blank_rows(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.Index]:
    empty = pd.Series(True, index=raw.index)
    for column in raw.columns:
        values = raw[column]
        if isinstance(values.dtype, pd.StringDtype) or values.dtype == object:
            empty &= values.isna() | values.astype("string").str.strip().eq("").fillna(True)
        else:
            empty &= values.isna()
    blank = raw.index[empty.to_numpy(dtype=bool)]
    return (raw.loc[~empty] if len(blank) else raw), blank


def load_inputs(config: Mapping) -> dict[str, pd.DataFrame | None]:
    """Load the configured transactions, customers and campaign files.

    Paths come from ``config["data"]`` (relative to the config file's folder, see
    :func:`segkit.core.config.resolve_path`; a ``file:`` URI is the local file it names), column maps
    from ``config["columns"]``, read options from ``config["io"]``.

    Returns
    -------
    dict
        ``{"transactions": DataFrame, "customers": DataFrame or None, "campaign": DataFrame or None}``;
        None when an optional input is not configured.

    Raises
    ------
    ConfigError
        ``data.transactions`` is not set, or a table is a Spark table (``table:…``) or a URI other than
        ``file:`` (``s3a://…``), which only ``engine.kind: spark`` reads.
    DataError
        A configured file is missing or invalid (see :func:`load_table`).

    Examples
    --------
    >>> from segkit.core.config import load_config
    >>> tables = load_inputs(load_config())
    >>> sorted(tables)
    ['campaign', 'customers', 'transactions']
    """
    data = config.get("data") or {}
    out: dict[str, pd.DataFrame | None] = {}
    for table in INPUT_TABLES:
        scheme = source_scheme(data.get(table))
        if scheme not in (None, "file"):
            raise ConfigError(f"data.{table} = {data[table]!r} is {source_description(scheme)}, which pandas cannot "
                              "read: load_inputs reads local files. Read it with Apache Spark (engine.kind: spark, "
                              "README \"Running on a Spark cluster\"), or copy the data here and give its local path.")
        path = resolve_source(config, data.get(table))  # a file: URI is the local file it names
        if path is None:
            if table == "transactions":
                source = config.get("_source")
                raise ConfigError(f"data.transactions is not set{f' in {source}' if source else ''}: "
                                  "give the path of your transactions file.")
            out[table] = None
            continue
        out[table] = load_table(path, table, config=config)
    return out
