"""Shipped default configuration (YAML). Each file is one config section."""
