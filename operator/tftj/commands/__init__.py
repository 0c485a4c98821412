"""Sub-commands of the `tftj` CLI, one module each (see tftj.cli)."""
