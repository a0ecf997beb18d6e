"""The package layout: the engine knows no domain, and the wheel adds one top-level package."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "refrad_builder"
DOMAIN = (
    "pydicom",
    "SimpleITK",
    "nibabel",
    "presidio_analyzer",
    "langdetect",
    "PIL",
    "refrad_builder.deid",
    "refrad_builder.inputs",
    "refrad_builder.imaging",
    "refrad_builder.reports",
    "refrad_builder.text",
    "refrad_builder.publish",
    "refrad_builder.anatomy",
    "refrad_builder.stages",
)


def test_engine_imports_no_domain_module():
    engine = sorted(p.stem for p in (PACKAGE / "engine").glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, json, sys\n"
        f"for m in {engine!r}: importlib.import_module('refrad_builder.engine.' + m)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = json.loads(out.stdout)
    assert "refrad_builder.engine.runner" in loaded
    bad = [m for m in loaded if any(m == d or m.startswith(d + ".") for d in DOMAIN)]
    assert bad == []


def test_every_subpackage_says_what_it_owns():
    for init in sorted(PACKAGE.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        if init.parent.name in ("data", "schema_files", "prompt_files"):
            continue
        assert doc and len(doc.split()) >= 8, f"{init.relative_to(ROOT)} has no docstring"


def test_no_module_over_500_lines():
    """Flat data tables (dicts/lists of literals) are allowed to be long; code is not."""
    big = []
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "stages").glob("*.py")]:
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > 500:
            big.append(f"{path.relative_to(ROOT)} ({n})")
    assert big == []


@pytest.mark.slow
def test_wheel_adds_exactly_one_top_level_package(tmp_path):
    wheel_dir = tmp_path / "wheel"
    src = tmp_path / "src"  # setuptools builds in the tree (build/): build from a copy
    shutil.copytree(
        ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "out", "build", "demo-inputs")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheel_dir), "."],
        cwd=src,
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    (wheel,) = wheel_dir.glob("refrad_builder-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        tops = {n.split("/", 1)[0] for n in zf.namelist()}
        assert "refrad_builder/stages/deid.py" in zf.namelist()
        assert "refrad_builder/prompt_files/vqa.en.yaml" in zf.namelist()
        assert "refrad_builder/publish/templates/card.md.j2" in zf.namelist()
    assert {t for t in tops if not t.endswith((".dist-info", ".data"))} == {"refrad_builder"}

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    before = {p.name for p in site.iterdir()}
    bin_before = {p.name for p in (venv / "bin").iterdir()}
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
        + ["--quiet", "--no-deps", "--no-compile", str(wheel)],
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    added = {p.name for p in site.iterdir()} - before
    assert {a for a in added if not a.endswith(".dist-info")} == {"refrad_builder"}
    assert {p.name for p in (venv / "bin").iterdir()} - bin_before == {"refrad"}


# Flat tables: one statement per entry, nothing to split by idea.
FLAT_TABLES = {
    "refrad_builder/cli.py:build_parser": "the argparse table of every command and option",
    "refrad_builder/demo/dicom_series.py:_phi_header": "the planted header attributes",
}


def test_no_function_over_80_lines():
    long = []
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "stages").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{path.relative_to(ROOT)}:{node.name}"
                if node.end_lineno - node.lineno + 1 > 80 and name not in FLAT_TABLES:
                    long.append(f"{name} ({node.end_lineno - node.lineno + 1})")
    assert long == []
