"""``python -m buying_groups.cli.validate_main`` runs bg-validate (for environments without
the console script on PATH)."""

from buying_groups.cli.validate import main

if __name__ == "__main__":
    main()
