"""CLI subcommands, one module per group; `shopstream.cli` mounts them."""
