# The design card asks for setup.py; the metadata, dependencies and tool settings live in pyproject.toml.
from setuptools import setup

setup()
