"""Admin: articles."""
