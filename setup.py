"""Packaging that pyproject.toml cannot say: the stored results ship inside the package.

The results of the long scales stay at the repository's root, ``results/<chapter>/<scale>.json``
(``make results`` writes them there). Mapped here to the data package ``nnstudies.stored_results``,
they are copied into every wheel, so that a copy installed by pip (as on Colab) shows the same
stored numbers as a checkout; ``nnstudies.results.results_dir`` reads them with importlib.resources.
Everything else about the package is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("lib"), "nnstudies.stored_results"],
    package_dir={"": "lib", "nnstudies.stored_results": "results"},
    package_data={"nnstudies.stored_results": ["*/*.json"]},
)
