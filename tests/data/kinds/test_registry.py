"""A family of dataset kinds is one file in dbps/data/kinds/: importing dbps.data registers what the file defines."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import dbps.data
from dbps.data import DATASETS, dataset_kind, kinds

FAMILY = '''\
"""A family of one kind, for the test."""
from dbps.data.kinds import dataset_kind_builder


@dataset_kind_builder("zz_new_kind", summary="registered by its own file alone", channels=1)
def build(request):
    raise NotImplementedError
'''


def test_every_module_of_the_kinds_folder_is_registered_on_import() -> None:
    found = sorted(path.stem for path in Path(kinds.__file__).parent.glob("*.py") if path.stem != "__init__")
    assert found and all(f"dbps.data.kinds.{name}" in sys.modules for name in found)


def test_a_new_file_in_the_kinds_folder_is_all_a_new_kind_needs(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "zz_family.py").write_text(FAMILY)
    monkeypatch.setattr(kinds, "__path__", [*kinds.__path__, str(tmp_path)])
    assert "zz_new_kind" not in DATASETS
    try:
        dbps.data._register_kind_families()  # what `import dbps.data` runs, with the folder now holding one more file
        assert dataset_kind("zz_new_kind").defaults == {"channels": 1}
        assert DATASETS.names()[-1] == "zz_new_kind"  # after the shipped families, in file-name order
    finally:
        DATASETS._entries.pop("zz_new_kind", None)
        DATASETS._display.pop("zz_new_kind", None)
        sys.modules.pop("dbps.data.kinds.zz_family", None)
