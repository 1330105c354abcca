"""Run mfftools from a checkout: `python cli.py ...` is `mfftools ...`."""
from mfftools.cli import main

if __name__ == "__main__":
    main()
