"""Admin: deliveries."""
