"""`python -m cai_bootstrap` runs the command line, for machines where the console script is not on PATH."""

from .cli import main

main()
