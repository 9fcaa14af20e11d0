"""`cimc synth-corpus`."""
COMMANDS: list = []
