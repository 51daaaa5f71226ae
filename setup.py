"""Package list for setuptools; all other metadata is in pyproject.toml.

The folder widgets/ installs as the import package tfgrad_widgets. The
pyproject.toml table [tool.setuptools.packages.find] cannot rename a folder
(it would silently leave tfgrad_widgets out of a wheel), so the list is built here.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["tfgrad", "tfgrad.*"])
    + ["tfgrad_widgets"]
    + [f"tfgrad_widgets.{name}" for name in find_packages(where="widgets")],
    package_dir={"tfgrad_widgets": "widgets"},
)
