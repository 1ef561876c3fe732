"""git-sync: keep a git ref checked out in a shared volume, published atomically."""
