"""Sweep results on disk: an append-only journal (resume after a kill) and the final table,
written atomically and sorted by point index so it is byte-identical however the sweep ran.

Journal ``OUT.partial.jsonl``: line 1 is a header with the spec hash; every further line is one
finished row as JSON, flushed and fsync'ed per batch. A kill can only cut the last line short; it
is dropped on resume. Only rows in the journal count as done.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

from sim.errors import UserError
from sim.search.columns import column_order

try:
    import fcntl
except ImportError:  # not POSIX: no journal lock
    fcntl = None

JOURNAL_SUFFIX = ".partial.jsonl"
JOURNAL_VERSION = 1
TABLE_SUFFIXES = (".csv", ".parquet", ".pq", ".json")


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Journal:
    """Finished rows of one sweep, keyed by point_id; opened with an exclusive lock."""

    def __init__(self, path: Path, spec_hash: str):
        self.path = Path(path)
        self.spec_hash = spec_hash
        self.rows: dict[str, dict] = {}
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"cannot open {self.path}: {e.strerror or e}") from None
        self._f = os.fdopen(fd, "r+b")
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._f.close()
                raise UserError(f"{self.path} is in use by another moe-sim sweep writing the same --out") from None
        try:
            self._load()
        except BaseException:
            self._f.close()
            raise

    def _load(self) -> None:
        data = self._f.read()
        lines = data.split(b"\n")
        end = 0
        header = None
        for i, raw in enumerate(lines):
            last = i == len(lines) - 1        # no newline after it: cut short by a kill (or empty)
            if last:
                break
            try:
                obj = json.loads(raw)
            except ValueError:
                if i == len(lines) - 2 and not lines[-1]:
                    break                     # a garbled final line: drop it
                raise UserError(f"{self.path}: line {i + 1} is corrupt; delete the file to start the sweep over") from None
            if header is None:
                header = obj
                if not isinstance(obj, dict) or obj.get("moe_sim_sweep_journal") != JOURNAL_VERSION:
                    raise UserError(f"{self.path} is not a moe-sim sweep journal; remove it or choose another --out")
                if obj.get("spec_hash") != self.spec_hash:
                    raise UserError(f"{self.path} holds results of a different sweep spec (spec hash "
                                    f"{obj.get('spec_hash')}, this spec {self.spec_hash}); use another --out "
                                    "or delete the journal to start over")
            else:
                self.rows.setdefault(obj["point_id"], obj)
            end += len(raw) + 1
        self._f.seek(end)
        self._f.truncate(end)
        if header is None:
            self._f.write((_dumps({"moe_sim_sweep_journal": JOURNAL_VERSION, "spec_hash": self.spec_hash}) + "\n").encode())
            self._sync()
            _fsync_dir(self.path)

    def _sync(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())

    def append(self, rows: list[dict]) -> None:
        """Write rows durably; each is stored (and later read) exactly as its JSON text says."""
        lines = [_dumps(r) for r in rows]
        self._f.write(("\n".join(lines) + "\n").encode())
        self._sync()
        for text in lines:
            r = json.loads(text)
            self.rows.setdefault(r["point_id"], r)

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()   # releases the lock

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return str(v)


def _write_csv(rows: list[dict], cols: list[str], f) -> None:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in cols])


def _arrow_column(values: list):
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.array(values, type=pa.bool_())
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.array(values, type=pa.int64())
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    return pa.array([None if v is None else (v if isinstance(v, str) else _cell(v)) for v in values], type=pa.string())


def _write_parquet(rows: list[dict], cols: list[str], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("writing Parquet needs pyarrow (pip install pyarrow), or use --out FILE.csv") from None
    table = pa.table({c: _arrow_column([r.get(c) for r in rows]) for c in cols})
    pq.write_table(table, path)


def table_format(path: str | Path) -> str:
    ext = Path(path).suffix.lower()
    if ext not in TABLE_SUFFIXES:
        raise UserError(f"--out {path}: expected a .csv, .parquet or .json file name")
    return {".pq": ".parquet"}.get(ext, ext)


def write_table(rows: list[dict], path: str | Path) -> None:
    """Write rows (in the order given) as CSV, Parquet or JSON: to a temporary file, then renamed over
    ``path``, so a reader never sees half a table."""
    path = Path(path)
    fmt = table_format(path)
    cols = column_order(rows)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if fmt == ".parquet":
            _write_parquet(rows, cols, tmp)
        else:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                if fmt == ".csv":
                    _write_csv(rows, cols, f)
                else:
                    json.dump([{c: r.get(c) for c in cols} for r in rows], f, indent=1)
                    f.write("\n")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    _fsync_dir(path)


def write_meta(path: str | Path, meta: dict) -> Path:
    """The run record next to the results (resolved spec, command line, version, counts)."""
    p = Path(f"{path}.meta.json")
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, p)
    return p
