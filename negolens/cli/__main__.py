"""``python -m negolens.cli`` runs the command line."""

from negolens.cli import main

main()
