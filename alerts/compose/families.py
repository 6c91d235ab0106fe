"""Where template families are: the shipped ones, and any folder of families.

The shipped families live at the top of the repository, ``templates/``; a wheel installs that
folder as the package data ``alerts/templates/`` (setup.py maps it). An organisation's own
families are any folder named by ``[paths] templates``.
"""

from __future__ import annotations

from pathlib import Path


def default_templates_dir() -> Path:
    """The shipped families: ``alerts/templates/`` in an install, ``templates/`` in a checkout.

    The repository keeps them at the top (``templates/``); a wheel installs that folder as the
    package data ``alerts/templates/`` (setup.py). Never a ``templates/`` beside an installed
    package: that is site-packages, where any other distribution may have put one.
    """
    package = Path(__file__).resolve().parents[1]
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


def find_families(folder: Path) -> dict[str, Path]:
    """The families in a folder: each sub-folder with a ``family.toml`` (``_base`` is none)."""
    if not folder.is_dir():
        return {}
    return {
        path.name: path
        for path in sorted(folder.iterdir())
        if (path / "family.toml").is_file() and not path.name.startswith("_")
    }
