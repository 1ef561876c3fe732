"""redis-ambassador: one localhost Redis for the app; writes to the master, reads to replicas."""
