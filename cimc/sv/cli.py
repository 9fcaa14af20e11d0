"""`cimc` subcommands of this stage."""
COMMANDS: list = []
