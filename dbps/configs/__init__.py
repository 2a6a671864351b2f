"""Shipped presets, resolvable by name: `dbps train --config quickstart`."""
