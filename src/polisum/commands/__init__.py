"""CLI commands, one module per command (or group), each a small typer app over _common.
polisum.cli assembles them; no command module imports polisum.cli."""
