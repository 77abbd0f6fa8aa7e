"""Plugin package; implementation in progress."""
