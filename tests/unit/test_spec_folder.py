"""`ml_batch.spec_folder`: a folder of specs, where one bad file never hides the others."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ml_batch.errors import SpecError
from ml_batch.spec_folder import SpecFileError, get_spec, load_specs, read_spec, scan_specs

DEMO = Path(__file__).resolve().parents[2] / "include" / "models" / "credit_default.yaml"


def _demo_dict() -> dict:
    return yaml.safe_load(DEMO.read_text())


def _write(tmp_path: Path, data: dict, name: str) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_load_specs_rejects_duplicate_names_and_get_spec_lists_known(tmp_path: Path) -> None:
    _write(tmp_path, _demo_dict(), "a.yaml")
    assert list(load_specs(tmp_path)) == ["credit_default"]
    with pytest.raises(SpecError, match="known models: credit_default"):
        get_spec(tmp_path, "churn")
    _write(tmp_path, _demo_dict(), "b.yml")
    with pytest.raises(SpecError, match="already defined in"):
        load_specs(tmp_path)
    with pytest.raises(SpecError, match="specs folder does not exist"):
        load_specs(tmp_path / "nope")


def _broken(tmp_path: Path, name: str) -> Path:
    """A spec of model `name` in `<name>.yaml` without `source.date_column`."""
    data = {**_demo_dict(), "name": name}
    del data["source"]["date_column"]
    return _write(tmp_path, data, f"{name}.yaml")


def test_scan_keeps_the_valid_specs_and_names_each_broken_file_and_field(tmp_path: Path) -> None:
    good = _write(tmp_path, _demo_dict(), "credit_default.yaml")
    first, second = _broken(tmp_path, "churn"), _broken(tmp_path, "fraud")
    (tmp_path / "notes.txt").write_text("not a spec")

    scan = scan_specs(tmp_path)

    assert list(scan.specs) == ["credit_default"] and scan.specs["credit_default"].name == "credit_default"
    assert scan.paths == {"credit_default": good}
    assert [error.path for error in scan.errors] == [first, second]
    for error in scan.errors:
        assert error.message.startswith(f"{error.path}: field 'source.date_column': required field is missing")


def test_scan_reports_a_duplicate_name_on_the_file_not_named_after_the_model(tmp_path: Path) -> None:
    owner = _write(tmp_path, _demo_dict(), "credit_default.yaml")
    copy = _write(tmp_path, _demo_dict(), "a_copy.yaml")  # sorts first, yet the name is credit_default.yaml's

    scan = scan_specs(tmp_path)

    assert scan.paths == {"credit_default": owner}
    assert scan.errors == [SpecFileError(copy, f"{copy}: model name 'credit_default' is already defined in {owner}")]
    assert read_spec(tmp_path, "credit_default").path == owner


def test_scan_reports_unreadable_files_and_goes_on(tmp_path: Path) -> None:
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / "binary.yaml").write_bytes(b"name: \xff\xfe")
    _write(tmp_path, _demo_dict(), "credit_default.yaml")

    scan = scan_specs(tmp_path)

    assert list(scan.specs) == ["credit_default"]
    assert [error.message for error in scan.errors] == [
        f"{tmp_path / 'binary.yaml'}: not a UTF-8 text file (invalid start byte at byte 6)",
        f"{tmp_path / 'folder.yaml'}: cannot read the spec file: Is a directory",
    ]


def test_scan_of_a_missing_folder_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nope: specs folder does not exist"):
        scan_specs(tmp_path / "nope")


def test_load_specs_names_every_broken_file_one_per_line(tmp_path: Path) -> None:
    _write(tmp_path, _demo_dict(), "credit_default.yaml")
    first, second = _broken(tmp_path, "churn"), _broken(tmp_path, "fraud")
    with pytest.raises(SpecError) as info:
        load_specs(tmp_path)
    lines = str(info.value).splitlines()
    assert [line.partition(": ")[0] for line in lines] == [str(first), str(second)]


def test_a_good_model_is_found_when_another_file_is_broken(tmp_path: Path) -> None:
    data = {**_demo_dict(), "name": "zeta"}
    _write(tmp_path, data, "other_name.yaml")  # not named after its model: found by reading the folder
    _write(tmp_path, _demo_dict(), "credit_default.yaml")
    _broken(tmp_path, "churn")
    (tmp_path / "bad.yaml").write_text("name: [unclosed")

    assert get_spec(tmp_path, "credit_default").name == "credit_default"
    assert read_spec(tmp_path, "credit_default").spec.name == "credit_default"
    assert get_spec(tmp_path, "zeta").name == "zeta"
    assert read_spec(tmp_path, "zeta").path == tmp_path / "other_name.yaml"


def test_asking_for_a_broken_model_gives_its_files_error(tmp_path: Path) -> None:
    _write(tmp_path, _demo_dict(), "credit_default.yaml")
    broken = _broken(tmp_path, "churn")
    with pytest.raises(SpecError) as info:
        read_spec(tmp_path, "churn")
    assert str(info.value) == f"{broken}: field 'source.date_column': required field is missing"


def test_an_unknown_model_lists_the_known_ones_and_the_broken_files(tmp_path: Path) -> None:
    _write(tmp_path, _demo_dict(), "credit_default.yaml")
    broken = _broken(tmp_path, "churn")
    with pytest.raises(SpecError) as info:
        get_spec(tmp_path, "fraud")
    first, *rest = str(info.value).splitlines()
    assert first == (f"no spec for model 'fraud' in {tmp_path} (known models: credit_default); "
                     "these spec files are invalid:")
    assert rest == [f"{broken}: field 'source.date_column': required field is missing"]
