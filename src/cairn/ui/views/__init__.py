"""One module per page type; each exposes ``router``."""
