"""The `shopstream` command line: the only code that imports several deployables."""
