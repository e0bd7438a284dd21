"""Vaultaire's setup script: metadata lives in setup.cfg.

The package list is given here because ``twisted/plugins`` must stay a
namespace directory (no ``__init__.py``) for twistd to find our plugin.
"""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["vaultaire", "vaultaire.*"]) + ["twisted.plugins"])
