"""``python -m gradbench``: the same program as the ``gradbench`` console script.

Python put the current directory first on ``sys.path`` to find this package; it is dropped before anything else is
imported (see :mod:`gradbench.isolation`), so a ``torch.py`` or ``multiprocessing.py`` in the current directory is
never run. (A ``gradbench.py`` there would be run by Python itself instead of this package: use the console script
or ``python -P -m gradbench`` in such a folder.)
"""

from gradbench.isolation import strip_implicit_entry

strip_implicit_entry()

from gradbench.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
