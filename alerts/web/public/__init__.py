"""web/public."""
