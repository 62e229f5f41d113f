"""Command-line interface: `docteur SUBCOMMAND` and the docteur-make/-verify/-ls/-cat shortcuts."""
