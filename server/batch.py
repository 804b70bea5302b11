"""`chibi batch`: a folder (or a list) of photos -> one avatar file per face, resumable.

The job, in order:

1. `batch_paths.plan_inputs` lists the inputs (a folder, recursively, or a text file of
   paths) and maps each to a sanitised output path that mirrors its relative
   path inside OUTPUT. Entries that would read from outside the input's base
   ('..', absolute paths elsewhere, symbolic links pointing out) are refused.
2. `Ledger` reads OUTPUT/manifest.jsonl (one line per converted input) and
   OUTPUT/failures.jsonl (one line per failed input). An input whose record
   still matches (same options, same input sha256, outputs on disk with their
   recorded sha256) is skipped; so is a failure with a lasting code on the same
   input bytes. Both files are then rewritten atomically without stale or torn
   lines, so each input appears in at most one line of one of them.
3. An engine (`server.batch_local.run_local`, worker processes with a pipe each, or
   `server.batch_ray.run_ray`, Ray Data) runs `Converter.convert_many` on the
   pending inputs in workers that load the models once, and yields one result
   dict per input.
4. The driver alone writes: each file goes to a temporary name in its final
   folder, is fsynced and renamed over the target; only then is the manifest
   line appended, flushed and fsynced. A SIGKILL at any point leaves either no
   line (the input is redone) or a complete one, and never a partial file
   under a final name; a torn last line is ignored on the next run, and stray
   temporary files (`.NAME.*.chibi-tmp`) are removed at start.

Photos are read by the workers from the paths given and exist only in memory;
nothing derived from their pixels is logged (messages carry error codes only).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from avatar3d.errors import ChibiError

from .atomic import TMP_SUFFIX, write_atomic
from .batch_paths import Item, face_output_path, output_file, plan_inputs, preview_path
from .process_setup import usable_cores

MANIFEST, FAILURES, LOCK = "manifest.jsonl", "failures.jsonl", ".chibi-batch.lock"
WORKER_LOG = ".chibi-batch-workers.log"  # the local workers' stderr, rewritten each run
# Failures worth retrying on a rerun; any other code is a property of the photo itself.
TRANSIENT_CODES = frozenset({"io_error", "worker_crashed", "internal_error"})


@dataclass(frozen=True)
class JobOptions:
    """What every output of a job depends on; a manifest record is reused only if they match."""

    format: str = "vrm1"
    quality: str = "default"
    all_faces: bool = False
    preview: bool = False
    model: str = "default"
    weights_dir: str = ""  # folder of the weights; "" = the shipped avatar3d/weights
    model_id: str = ""  # "name:sha256 prefix" of the weights `model` resolves to (run_batch)
    thumbnail: bool = True  # VRM formats: embed the 1024 px thumbnail

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def identity(self) -> dict[str, Any]:
        """What ledger records are matched on: the weights by content, not by folder."""
        return {k: v for k, v in asdict(self).items() if k != "weights_dir"}

    def matches(self, recorded: Any) -> bool:
        """Whether a ledger record's `options` are these. An option newer than the record
        reads as its default there, so an upgrade does not redo a finished job."""
        if not isinstance(recorded, dict):
            return False
        defaults = {f.name: f.default for f in fields(self) if f.name != "weights_dir"}
        return {**defaults, **recorded} == self.identity()


# -- writing: atomic files, the ledger --------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str | None:
    """sha256 of a regular file's contents, or None if it is missing/unreadable/not regular."""
    try:
        # O_NONBLOCK: a FIFO named like a photo must not hang the resume check
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            if not os.path.stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def remove_temp_files(root: Path) -> int:
    """Delete temporary files a killed run left under `root`; returns how many."""
    removed = 0
    for folder, _dirs, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            if name.startswith(".") and name.endswith(TMP_SUFFIX):
                os.unlink(os.path.join(folder, name))
                removed += 1
    return removed


def read_jsonl(path: Path) -> dict[str, dict]:
    """input key -> its last record; unparsable lines (a torn last line) are skipped."""
    records: dict[str, dict] = {}
    try:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
    except FileNotFoundError:
        return records
    for line in lines:
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(record, dict) and isinstance(record.get("input"), str):
            records[record["input"]] = record
    return records


def _line(record: dict) -> bytes:
    # ASCII escapes: a file name that is not valid UTF-8 (a lone surrogate here) round-trips
    return (json.dumps(record, separators=(",", ":")) + "\n").encode()


class Ledger:
    """OUTPUT/manifest.jsonl (successes) and OUTPUT/failures.jsonl (failures), append-only.

    Holds an exclusive lock on OUTPUT/.chibi-batch.lock while open: two jobs never
    write one OUTPUT. Every append is flushed and fsynced before it returns.
    """

    def __init__(self, root: Path):
        self.root = root
        try:  # O_NOFOLLOW: a link planted in OUTPUT must not make us create a file elsewhere
            self._lock_fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise ChibiError("unsafe_path", f"cannot open {root / LOCK}: {exc.strerror}") from None
        try:
            import fcntl

            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise ChibiError("output_busy", f"another chibi batch is writing to {root}") from None
        self.manifest = read_jsonl(root / MANIFEST)
        self.failures = read_jsonl(root / FAILURES)
        self._files: dict[str, Any] = {}

    def rewrite(self, manifest: dict[str, dict], failures: dict[str, dict]) -> None:
        """Replace both files (atomically) by exactly these records, then open them for appends."""
        for name, records in ((MANIFEST, manifest), (FAILURES, failures)):
            try:
                write_atomic(self.root / name, b"".join(_line(r) for r in records.values()))
                self._files[name] = open(self.root / name, "ab")  # noqa: SIM115 - see close()
            except OSError as exc:
                raise _io_error("write", self.root / name, exc) from exc

    def append(self, name: str, record: dict) -> None:
        f = self._files[name]
        try:
            f.write(_line(record))
            f.flush()
            os.fsync(f.fileno())
        except OSError as exc:  # disk full: the job stops; a rerun skips the torn line
            raise _io_error("append to", self.root / name, exc) from exc

    def close(self) -> None:
        for f in self._files.values():
            try:
                f.close()
            except OSError:  # the unwritten rest of a failed append: already reported
                pass
        os.close(self._lock_fd)


def _io_error(doing: str, path: Path, exc: OSError) -> ChibiError:
    return ChibiError("io_error", f"cannot {doing} {path}: {exc.strerror or exc}")


def record_is_current(record: dict, item: Item, options: JobOptions, root: Path,
                      input_sha: str | None) -> bool:  # fmt: skip
    """True when a manifest record still describes this input's finished outputs."""
    outputs = record.get("outputs") or []
    if not options.matches(record.get("options")) or input_sha is None:
        return False
    if record.get("input_sha256") != input_sha or not outputs:
        return False
    for number, entry in enumerate(outputs):
        files = [(entry, face_output_path(item.output, number))]
        if options.preview:
            files.append((entry.get("preview") or {}, preview_path(files[0][1])))
        for info, rel in files:
            if info.get("path") != rel or (root / rel).is_symlink():
                return False
            if sha256_file(root / rel) != info.get("sha256"):
                return False
    return True


# -- the driver ----------------------------------------------------------------------------


@dataclass
class Summary:
    """What a run did. converted/failed: this run; skipped_ok/skipped_failed: inputs an
    earlier run had finished; codes: failure code -> count (this run); times in seconds."""

    total: int
    output: str
    converted: int = 0
    failed: int = 0
    skipped_ok: int = 0
    skipped_failed: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    temp_removed: int = 0
    elapsed_s: float = 0.0
    first_result_s: float | None = None  # start-up: until the engine's first result
    interrupted: bool = False

    @property
    def accounted(self) -> int:
        return self.converted + self.failed + self.skipped_ok + self.skipped_failed


def run_batch(
    input_path: str | os.PathLike, output_dir: str | os.PathLike, options: JobOptions, *,
    engine: str = "local", workers: int | None = None, address: str | None = None,
    base: str | os.PathLike | None = None, retry_failed: bool = False, chunk: int = 2,
    progress: bool = True,
) -> Summary:  # fmt: skip
    """Convert every input of INPUT into OUTPUT (see the module docstring); resumable.

    engine: "local" (process pool of `workers`, default: the cores) or "ray" (Ray
    Data; `address` joins a cluster, otherwise a local Ray of `workers` CPUs).
    retry_failed: also redo inputs that failed with a lasting code (no_face...).
    Ctrl-C stops cleanly (summary.interrupted). Raises ChibiError for a job that
    cannot run (invalid_input, invalid_output, output_busy, io_error, not_available).
    """
    from tqdm import tqdm

    items = plan_inputs(input_path, output_dir, options.format, base)
    options = pin_model(options)
    os.makedirs(output_dir, exist_ok=True)
    root = Path(os.path.realpath(output_dir))
    ledger = Ledger(root)
    summary = Summary(total=len(items), output=str(root))
    start = time.perf_counter()
    try:
        summary.temp_removed = remove_temp_files(root)
        pending = _resume(items, ledger, options, retry_failed, summary)
        bar = tqdm(
            total=len(items), initial=summary.skipped_ok + summary.skipped_failed,
            unit="photo", desc="chibi batch", file=sys.stderr, disable=not progress,
            dynamic_ncols=True, mininterval=0.5, smoothing=0.05,
        )  # fmt: skip
        by_key = {item.key: item for item in pending}
        for item in pending:
            if item.refused:
                _fail(ledger, summary, options, item.key, "unsafe_path", item.refused)
                bar.update(1)
        tasks = [(item.key, item.path) for item in pending if not item.refused]
        # replaced, not written through: a link planted there would empty what it points to
        write_atomic(root / WORKER_LOG, b"")
        results = _engine(engine, tasks, options, workers, address, chunk, root / WORKER_LOG)
        try:
            for result in results:
                if summary.first_result_s is None:
                    summary.first_result_s = time.perf_counter() - start
                _record(ledger, summary, options, root, by_key[result["key"]], result)
                bar.set_postfix(ok=summary.converted, failed=summary.failed, refresh=False)
                bar.update(1)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            results.close()
            bar.close()
    finally:
        ledger.close()
        summary.elapsed_s = time.perf_counter() - start
    return summary


def pin_model(options: JobOptions) -> JobOptions:
    """`options` naming the exact weights ("default" moves when new weights ship), so a
    rerun after a model update redoes the photos. ChibiError model_unavailable if none."""
    from avatar3d.model_files import weights_info

    info = weights_info(options.model, options.weights_dir or None)
    return replace(options, model_id=f"{info['name']}:{info['sha256'][:16]}")


def _engine(name: str, tasks: list, options: JobOptions, workers: int | None,
            address: str | None, chunk: int, log: Path):  # fmt: skip
    if name == "local":
        from .batch_local import run_local

        return run_local(tasks, options, workers or usable_cores(), chunk, str(log))
    if name == "ray":
        from .batch_ray import run_ray

        return run_ray(tasks, options, workers, address, chunk)
    raise ChibiError("invalid_input", f"unknown engine {name!r}; local or ray")


def _resume(items: list[Item], ledger: Ledger, options: JobOptions, retry_failed: bool,
            summary: Summary) -> list[Item]:  # fmt: skip
    """Sort the inputs into done (counted in `summary`) and pending (returned), then rewrite
    the ledger with the records of done inputs and of inputs outside this job."""
    plan_keys = {item.key for item in items}
    done_ok, done_failed, pending = set(), set(), []
    for item in items:
        record, failure = ledger.manifest.get(item.key), ledger.failures.get(item.key)
        if item.refused:
            if failure and failure.get("code") == "unsafe_path":
                done_failed.add(item.key)
            else:
                pending.append(item)
            continue
        sha = sha256_file(item.path) if (record or failure) else None
        if record and record_is_current(record, item, options, ledger.root, sha):
            done_ok.add(item.key)
        elif (
            failure and not retry_failed and sha is not None
            and failure.get("code") not in TRANSIENT_CODES
            and options.matches(failure.get("options"))
            and failure.get("input_sha256") == sha
        ):  # fmt: skip
            done_failed.add(item.key)
        else:
            pending.append(item)
    summary.skipped_ok, summary.skipped_failed = len(done_ok), len(done_failed)
    # Records keep their order, so a run with nothing to do leaves both files as they were.
    ledger.rewrite(
        {k: r for k, r in ledger.manifest.items() if k not in plan_keys or k in done_ok},
        {k: r for k, r in ledger.failures.items() if k not in plan_keys or k in done_failed},
    )
    return pending


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _fail(ledger: Ledger, summary: Summary, options: JobOptions, key: str, code: str,
          message: str, input_sha: str | None = None) -> None:  # fmt: skip
    ledger.append(FAILURES, {"input": key, "code": code, "message": message,
                             "input_sha256": input_sha, "options": options.identity(),
                             "finished_at": _now()})  # fmt: skip
    summary.failed += 1
    summary.codes[code] = summary.codes.get(code, 0) + 1


def _record(ledger: Ledger, summary: Summary, options: JobOptions, root: Path, item: Item,
            result: dict) -> None:  # fmt: skip
    """Write one result: its files (atomically), then its manifest line; or a failure row."""
    if not result["ok"]:
        error = result["error"]
        _fail(ledger, summary, options, item.key, error["code"], error["message"],
              result["input_sha256"])  # fmt: skip
        return
    start = time.perf_counter()
    outputs = []
    try:
        for number, face in enumerate(result["faces"]):
            rel = face_output_path(item.output, number)
            outputs.append(_write_file(root, rel, face["model"]) | {"params": face["params"]})
            if face.get("preview") is not None:
                outputs[-1]["preview"] = _write_file(root, preview_path(rel), face["preview"])
    except ChibiError as exc:  # unsafe_path: a symbolic link planted inside OUTPUT
        _fail(ledger, summary, options, item.key, exc.code, exc.message, result["input_sha256"])
        return
    timings = dict(result["timings_ms"], write=round((time.perf_counter() - start) * 1000, 2))
    ledger.append(MANIFEST, {
        "input": item.key, "input_sha256": result["input_sha256"],
        "input_bytes": result["input_bytes"], "outputs": outputs,
        "options": options.identity(), "timings_ms": timings, "finished_at": _now(),
    })  # fmt: skip
    summary.converted += 1


def _write_file(root: Path, rel: str, data: bytes) -> dict[str, Any]:
    try:
        write_atomic(output_file(root, rel), data)
    except OSError as exc:  # disk full, permissions: the whole job stops, a rerun resumes
        raise _io_error("write", root / rel, exc) from exc
    return {"path": rel, "sha256": sha256_bytes(data), "bytes": len(data)}
