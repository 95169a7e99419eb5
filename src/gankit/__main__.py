"""``python -m gankit`` (what ``torchrun -m gankit train ...`` runs): the same CLI as ``gankit``."""

from gankit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
