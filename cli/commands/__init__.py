"""CLI subcommands, one module per group; `cli.main` mounts them."""
