"""Parsing the DAG folder opens no connection, reads no file but the spec files, and stays light.

The scheduler's DAG processor parses every DAG file again and again, so a DAG file must not touch the
database or the network, read stray files, or import the scoring stack (pandas, scikit-learn, Great
Expectations, database drivers). A fresh interpreter (so nothing is imported or cached yet) installs an
audit hook, imports Airflow, parses `dags/` into a DagBag as the DAG processor does and reports every
`open` and network event. ML_BATCH_DATABASE_URL is unset, so nothing could even find a database; a SQLite
metadata DB would show up as an opened `airflow.db` under AIRFLOW_HOME.

Run with `-rA` (or `-s`) to see the parse time; it is reported, never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import ml_batch

REPO = Path(__file__).resolve().parents[2]
DAGS_DIR = REPO / "dags"
DEMO_SPECS = REPO / "include" / "models"
ML_BATCH_PKG = Path(ml_batch.__file__).resolve().parent
SPEC_FILES = {path.resolve() for pattern in ("*.yaml", "*.yml") for path in DEMO_SPECS.glob(pattern)}

# Imported only inside tasks; importing any of them at parse time would cost seconds per parse.
HEAVY_MODULES = ("pandas", "sklearn", "great_expectations", "psycopg2", "adbc_driver_postgresql")
CODE_SUFFIXES = (".py", ".pyc", ".so", ".pth")
REPORT_MARKER = "PARSE-REPORT "

PROBE = r"""
import json, os, sys, time

NETWORK = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
           "socket.sendto", "socket.sendmsg"}
phase = ["airflow_import"]
opened, network, spawned = [], [], []


def audit(event, args):
    if phase[0] is None:
        return
    if event == "open":
        path = args[0] if isinstance(args[0], int) else os.fsdecode(args[0])
        opened.append({"phase": phase[0], "path": path, "mode": args[1], "flags": args[2]})
    elif event in NETWORK:
        network.append({"phase": phase[0], "event": event, "args": repr(args)})
    elif event == "subprocess.Popen":
        spawned.append({"phase": phase[0], "argv": repr(args[1])})


sys.addaudithook(audit)
start = time.perf_counter()
from airflow.dag_processing.dagbag import BundleDagBag

imported = time.perf_counter()
before = {name.partition(".")[0] for name in sys.modules}
phase[0] = "parse"
folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
parsed = time.perf_counter()
phase[0] = None

import sysconfig, tempfile

top_level = {name.partition(".")[0] for name in sys.modules}
paths = sysconfig.get_paths()
print(MARKER + json.dumps({
    "airflow_import_seconds": imported - start,
    "parse_seconds": parsed - imported,
    "file_seconds": {stat.file: stat.duration.total_seconds() for stat in bag.dagbag_stats},
    "dag_ids": sorted(bag.dag_ids),
    "import_errors": bag.import_errors,
    "opened": opened,
    "network": network,
    "spawned": spawned,
    "modules": sorted(top_level),
    "parse_imported": sorted(top_level - before),
    "sys_path": sys.path,
    "installed": sorted({paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}),
    "tempdir": tempfile.gettempdir(),
}))
""".replace("MARKER", repr(REPORT_MARKER))


@dataclass(frozen=True)
class _Context:
    """What the probe's interpreter was given: which opens are Python's or Airflow's own business."""

    airflow_home: Path
    tempdir: Path
    installed: tuple[Path, ...]
    sys_path: frozenset[str]


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _is_code(path: Path) -> bool:
    return path.suffix in CODE_SUFFIXES


def _is_generic(path: Path) -> bool:
    """Files any Python process may read: code, package metadata, time zones, /dev/null, /proc (psutil)."""
    return (
        _is_code(path)
        or any(part.endswith((".dist-info", ".egg-info")) for part in path.parts)
        or "zoneinfo" in path.parts
        or path == Path(os.devnull)
        or _under(path, Path("/proc"))
    )


def _allowed(raw: str | int, ctx: _Context) -> bool:
    """Whether an open at parse time is fine; under the repo only dags/ and ml_batch code and spec files are."""
    if isinstance(raw, int) or raw in ctx.sys_path:
        # A file descriptor (the pipe of a subprocess Python's `platform` module runs), or importlib probing
        # a sys.path entry (zip archives, AIRFLOW_HOME/config and /plugins, the editable-install hook).
        return True
    path = Path(os.path.abspath(raw))
    if _under(path, ML_BATCH_PKG):
        return _is_code(path)  # not ml_batch's SQL, YAML resources or alembic.ini
    if _under(path, REPO) and not any(_under(path, folder) for folder in ctx.installed):
        return path.resolve() in SPEC_FILES or (_under(path, DAGS_DIR) and _is_code(path))
    if _under(path, ctx.airflow_home):
        return path == ctx.airflow_home / "airflow.cfg"
    if path.parent == ctx.tempdir:
        return True  # tempfile's check that the temp folder is writable (Airflow asks for it on import)
    return any(_under(path, folder) for folder in ctx.installed) or _is_generic(path)


def _other_files(report: dict[str, Any], phase: str) -> list[str]:
    """Opened files that are not code, package metadata or a sys.path probe: what the tests reason about."""
    paths = {
        event["path"]
        for event in report["opened"]
        if event["phase"] == phase and isinstance(event["path"], str) and event["path"] not in report["sys_path"]
    }
    return sorted(p for p in paths if not (_is_code(Path(p)) or ".dist-info" in p))


@pytest.fixture(scope="module")
def parse_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Parse the DAG folder in a fresh interpreter under the audit hook; its JSON report."""
    root = tmp_path_factory.mktemp("parse")
    (root / "airflow_home").mkdir()
    (root / "tmp").mkdir()
    probe = root / "parse_probe.py"
    probe.write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ML_BATCH_"))}
    env.update(
        AIRFLOW_HOME=str(root / "airflow_home"),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_DIR),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        ML_BATCH_SPECS_DIR=str(DEMO_SPECS),
        TMPDIR=str(root / "tmp"),
    )
    result = subprocess.run(
        [sys.executable, str(probe)], cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith(REPORT_MARKER)]
    assert result.returncode == 0 and lines, f"probe failed ({result.returncode}):\n{result.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(lines[-1].removeprefix(REPORT_MARKER))
    report["context"] = _Context(
        airflow_home=root / "airflow_home",
        tempdir=Path(report["tempdir"]),
        installed=tuple(Path(p) for p in report["installed"]),
        sys_path=frozenset(report["sys_path"]),
    )
    return report


def test_parse_succeeds(parse_report: dict[str, Any]) -> None:
    # Without this the other tests could pass vacuously on a DAG file that failed early.
    from ml_batch.spec_folder import load_specs

    assert parse_report["import_errors"] == {}
    assert parse_report["dag_ids"] == sorted(
        f"{prefix}{name}" for name in load_specs(DEMO_SPECS) for prefix in ("batch_predict_", "retrain_")
    )


def test_parse_opens_no_connection(parse_report: dict[str, Any]) -> None:
    connects = [e for e in parse_report["network"] if e["event"] == "socket.connect"]
    assert connects == []
    assert parse_report["network"] == []  # no DNS lookup either


def test_parse_spawns_no_process(parse_report: dict[str, Any]) -> None:
    # The embedded PostgreSQL, for one, would be a subprocess.
    assert [e for e in parse_report["spawned"] if e["phase"] == "parse"] == []


def test_parse_reads_the_spec_files_and_nothing_else(parse_report: dict[str, Any]) -> None:
    ctx: _Context = parse_report["context"]
    stray = sorted({str(e["path"]) for e in parse_report["opened"] if not _allowed(e["path"], ctx)})
    assert stray == []
    specs_read = {
        Path(e["path"]).resolve()
        for e in parse_report["opened"]
        if isinstance(e["path"], str) and _under(Path(e["path"]).resolve(), DEMO_SPECS.resolve())
    }
    assert specs_read == SPEC_FILES


def test_parse_writes_nothing(parse_report: dict[str, Any]) -> None:
    ctx: _Context = parse_report["context"]
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    written = sorted(
        str(e["path"])
        for e in parse_report["opened"]
        if e["phase"] == "parse"
        and isinstance(e["path"], str)
        and (e["flags"] & write_flags or (e["mode"] and set(e["mode"]) & set("wax+")))
        and Path(e["path"]).parent != ctx.tempdir
        and e["path"] != os.devnull
    )
    assert written == []


@pytest.mark.parametrize("module", HEAVY_MODULES)
def test_parse_does_not_import_the_scoring_stack(parse_report: dict[str, Any], module: str) -> None:
    assert module not in parse_report["modules"]


def test_report_parse_time(parse_report: dict[str, Any], record_property: Any) -> None:
    """Reports (never asserts) how long importing Airflow and parsing the folder take, and what they read."""
    record_property("airflow_import_seconds", round(parse_report["airflow_import_seconds"], 3))
    record_property("parse_seconds", round(parse_report["parse_seconds"], 3))
    print(
        f"\nimporting Airflow: {parse_report['airflow_import_seconds']:.2f}s; "
        f"parsing dags/: {parse_report['parse_seconds']:.2f}s "
        f"(per file: {parse_report['file_seconds']})"
        f"\nmodules the DAG file imports beyond Airflow's: {parse_report['parse_imported']}"
        f"\nnon-code files opened while importing Airflow: {_other_files(parse_report, 'airflow_import')}"
        f"\nnon-code files opened while parsing dags/: {_other_files(parse_report, 'parse')}"
    )
    assert parse_report["parse_seconds"] >= 0
