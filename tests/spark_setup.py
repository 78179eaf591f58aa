"""Make sure a Java 17+ runtime is installed for ``tests/test_spark.py`` (run by ``make test``).

Idempotent: does nothing when :func:`segkit.data.spark.java_problem` finds a usable ``java``. Otherwise,
as root (or with ``sudo -n``), runs ``apt-get update`` then ``apt-get install -y
openjdk-17-jre-headless`` quietly (Debian's package registry; Spark's own downloads are not used).
``pyspark`` itself is a Python package of the ``spark`` extra, which ``make test`` installs with the
dev extras. Never fails the build by itself: when it cannot install, it says why and exits 0, and the
Spark tests then fail with the same message (they never skip).

Usage: ``python tests/spark_setup.py``
"""

from __future__ import annotations

import shutil
import sys

from apt_setup import apt_install, ensure

from segkit.data.spark import java_problem

PACKAGE = "openjdk-17-jre-headless"


def install() -> str | None:
    """Install Debian's Java 17 runtime with apt-get; return an error text, or None on success."""
    return apt_install(PACKAGE) or java_problem()


def main() -> int:
    """Install Java when missing or too old; always returns 0 (see the module docstring)."""
    return ensure("spark_setup", java_problem(), PACKAGE, install, lambda: shutil.which("java"), "tests/test_spark.py")


if __name__ == "__main__":
    sys.exit(main())
