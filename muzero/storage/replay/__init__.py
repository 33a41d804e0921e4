"""The replay store: one protocol (protocol.py), two backends (memory.py, redis_store.py + lua/),
content-addressed frames, a byte-bounded cache, sum trees and the rate limiter."""
