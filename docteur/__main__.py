"""`python -m docteur` runs the docteur command."""

from docteur.cli.main import main

main()
