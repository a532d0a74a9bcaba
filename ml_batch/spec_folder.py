"""The specs folder: every spec file of a folder read at once, a bad file never hiding the others.

`scan_specs` sorts a folder's `*.yaml`/`*.yml` files into valid specs and `SpecFileError`s (a file that does
not parse or validate, or names a model another file defines); the DAG files build the valid ones
(`ml_batch.airflow.dag_factory`), `ml-batch specs check` reports each. `read_spec`/`get_spec` find one model
by reading its own file (`<name>.yaml`) first, so a broken file of another model does not matter;
`load_specs` is the strict form, naming every bad file. One file is read by `ml_batch.spec.read_spec_file`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ml_batch.errors import SpecError
from ml_batch.spec import PinnedSpec, Spec, read_spec_file


def _spec_files(specs_dir: Path) -> list[Path]:
    if not specs_dir.is_dir():
        raise SpecError(f"{specs_dir}: specs folder does not exist (set ML_BATCH_SPECS_DIR)")
    return sorted([*specs_dir.glob("*.yaml"), *specs_dir.glob("*.yml")])


@dataclass(frozen=True)
class SpecFileError:
    """One spec file that cannot be used: `message` is its SpecError's text (it names the file and field)."""

    path: Path
    message: str


@dataclass(frozen=True)
class SpecScan:
    """Every spec file of a folder, sorted into the valid specs and the files that are not.

    `specs` maps each model name to its spec and `paths` to the file it came from; `errors` holds one entry
    per file that does not parse or validate, or that names a model another file already defines.
    """

    specs: dict[str, Spec]
    paths: dict[str, Path]
    errors: list[SpecFileError]

    def error_text(self) -> str:
        """Every error's message, one per line (what a SpecError about the whole folder says)."""
        return "\n".join(error.message for error in self.errors)


def _scan(specs_dir: Path) -> tuple[dict[str, PinnedSpec], list[SpecFileError]]:
    """Every file of `specs_dir` read: the valid specs by model name (in file order), one error per unusable file.

    Of two files defining the same model, the one named after it (`<model>.yaml`) keeps the name, so the DAG
    built from the folder and `read_spec`, which reads that file first, agree; else the first in file order.
    """
    read: list[tuple[Path, PinnedSpec]] = []
    errors: list[SpecFileError] = []
    for path in _spec_files(specs_dir):
        try:
            read.append((path, read_spec_file(path)))
        except SpecError as exc:
            errors.append(SpecFileError(path, str(exc)))
    owners: dict[str, Path] = {}
    for path, pinned in sorted(read, key=lambda item: (item[0].stem != item[1].spec.name, item[0])):
        name = pinned.spec.name
        if name in owners:
            errors.append(SpecFileError(path, f"{path}: model name {name!r} is already defined in {owners[name]}"))
        else:
            owners[name] = path
    errors.sort(key=lambda error: error.path)
    return {pinned.spec.name: pinned for path, pinned in read if owners[pinned.spec.name] == path}, errors


def scan_specs(specs_dir: Path) -> SpecScan:
    """Read every `*.yaml`/`*.yml` spec in `specs_dir`; never raises for a bad file.

    A file that does not parse or validate, or that names a model another file already defines, becomes a
    `SpecFileError` and the other files still count: one bad spec must not hide every model's DAGs.

    Raises:
        SpecError: `specs_dir` is not a folder.
    """
    pinned, errors = _scan(specs_dir)
    return SpecScan(
        specs={name: each.spec for name, each in pinned.items()},
        paths={name: each.path for name, each in pinned.items() if each.path is not None},
        errors=errors,
    )


def load_specs(specs_dir: Path) -> dict[str, Spec]:
    """Every spec in `specs_dir`, keyed by model name, when every file is valid and names are unique.

    Raises:
        SpecError: naming every invalid file and its field, one per line (`scan_specs` keeps the valid ones).
    """
    scan = scan_specs(specs_dir)
    if scan.errors:
        raise SpecError(scan.error_text())
    return scan.specs


def _unknown_model(specs_dir: Path, name: str, pinned: dict[str, PinnedSpec], errors: list[SpecFileError]) -> SpecError:
    """The error for a model no valid file defines: the file named after it when that one is broken, else the
    known models and every broken file (one of them may be the one meant)."""
    for error in errors:
        if error.path.stem == name:
            return SpecError(error.message)
    known = ", ".join(sorted(pinned)) or "none"
    message = f"no spec for model {name!r} in {specs_dir} (known models: {known})"
    if errors:
        message += "; these spec files are invalid:\n" + "\n".join(error.message for error in errors)
    return SpecError(message)


def get_spec(specs_dir: Path, name: str) -> Spec:
    """The spec of model `name`; another file being broken does not matter.

    Raises:
        SpecError: no valid file defines `name`: the error of `<name>.yaml` when it is invalid, else the
            known models and every invalid file.
    """
    return read_spec(specs_dir, name).spec


def read_spec(specs_dir: Path, name: str) -> PinnedSpec:
    """The spec of model `name` with its text, reading one file: `<name>.yaml` (or `.yml`) when it defines
    `name`, as the specs folder's files normally do; only otherwise the whole folder, as `scan_specs` does.

    Raises:
        SpecError: as `get_spec`.
    """
    for path in (specs_dir / f"{name}.yaml", specs_dir / f"{name}.yml"):
        if path.is_file():
            try:
                pinned = read_spec_file(path)
            except SpecError:
                break  # the folder scan below reports it, with the rest of the folder
            if pinned.spec.name == name:
                return pinned
    specs, errors = _scan(specs_dir)
    if name in specs:
        return specs[name]
    raise _unknown_model(specs_dir, name, specs, errors)
