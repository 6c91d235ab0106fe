"""Packaging that pyproject.toml cannot say on its own: ship the top-level ``templates/`` folder.

The alert template families live at the top of the repository, ``templates/``, where
organisations and reviewers look for them (DESIGN.md). A wheel has no room beside the package,
so the folder is installed as the package data ``alerts/templates/`` (``package_dir`` maps it);
``alerts.compose.families`` finds it there in an install and at the top in a checkout. Every
other setting is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["alerts*", "channels*"]), "alerts.templates"],
    package_dir={"alerts.templates": "templates"},
)
