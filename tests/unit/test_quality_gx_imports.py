"""The stand-in that puts off GX's unused imports: the importer gets the stand-in, the first
attribute read imports the real module, which then replaces it in ``sys.modules``."""

from __future__ import annotations

import importlib
import importlib.util
import sys

from phonecheck.quality import gx


def test_a_deferred_module_is_imported_on_first_attribute_read(monkeypatch):
    name = "tests.unit._deferred_probe"
    monkeypatch.delitem(sys.modules, name, raising=False)
    stand_in = gx._OnFirstUse(name, importlib.util.find_spec(name))
    monkeypatch.setitem(sys.modules, name, stand_in)

    imported = importlib.import_module(name)  # what GX's module-level import statement gets
    assert imported is stand_in and "VALUE" not in stand_in.__dict__

    assert imported.VALUE == 42  # the first read imports the real module
    real = sys.modules[name]
    assert real is not stand_in and real.VALUE == 42
    assert importlib.import_module(name) is real  # later importers get the real module


def test_only_modules_not_yet_imported_are_deferred(monkeypatch):
    monkeypatch.setattr(gx, "DEFERRED_IMPORTS", ("json", "tests.unit._deferred_probe", "no_such_pkg.sub"))
    monkeypatch.delitem(sys.modules, "tests.unit._deferred_probe", raising=False)
    real_json = sys.modules["json"]
    gx._defer_unused_imports()
    assert sys.modules["json"] is real_json
    assert isinstance(sys.modules["tests.unit._deferred_probe"], gx._OnFirstUse)
    assert "no_such_pkg.sub" not in sys.modules
    monkeypatch.delitem(sys.modules, "tests.unit._deferred_probe")
