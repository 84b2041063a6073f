"""Package discovery only; all metadata lives in pyproject.toml.

backends/ and frontends/ install inside the snnir namespace (snnir.backends.*, snnir.frontends.*,
docs/architecture.md, Layout). Listing their subpackages by walking the tree means a new backend or frontend
never needs an edit here; tests/test_packaging.py checks the result against the source tree.
"""

from pathlib import Path

from setuptools import setup

ROOTS = {"snnir": "snnir", "snnir.backends": "backends", "snnir.frontends": "frontends"}
#: Folders installed as data packages (their files listed in pyproject's package-data): the example
#: models, so that an installed snnir (``python -m snnir.demo``) finds the quickstart CNN.
DATA = {"snnir.examples": "examples"}


def discover_packages() -> list[str]:
    packages = []
    for package, directory in ROOTS.items():
        root = Path(directory)
        for init in sorted(root.rglob("__init__.py")):
            relative = init.parent.relative_to(root)
            if "__pycache__" in relative.parts or any(part.startswith(".") for part in relative.parts):
                continue
            packages.append(".".join([package, *relative.parts]) if relative.parts else package)
    return packages + list(DATA)


if __name__ == "__main__":  # setuptools runs this file as __main__; tests import discover_packages
    setup(packages=discover_packages(), package_dir={**ROOTS, **DATA})
