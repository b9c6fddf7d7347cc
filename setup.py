"""Shim for tools that still look for setup.py; pyproject.toml is the single source of truth."""

from setuptools import setup

setup()
