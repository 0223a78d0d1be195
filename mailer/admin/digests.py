"""Admin: digests."""
