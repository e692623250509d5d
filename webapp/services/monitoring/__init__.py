"""Monitoring: what the status page, /api/health and /metrics show.

Owns the consumers' heartbeats, each process's tally of what it saw, the delivery
figures written once per beat, the kept job counts, and `stats.collect` that reads them
all for a request. Imports everything before it; nothing in services imports it.
"""
