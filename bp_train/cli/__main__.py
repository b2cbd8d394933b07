"""`python -m bp_train.cli ...`: the same commands as the `bp-train` executable."""

from .main import main

main(prog_name="bp-train")
