"""absl binaries: `python -m vsg_spiel.eval.<name>`."""
