"""The seed notebook's code cells, runnable against the emulator (see seed_cells.py)."""
