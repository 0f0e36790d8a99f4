"""Fan-out between processes: in memory (one node) or Redis (a cluster)."""
