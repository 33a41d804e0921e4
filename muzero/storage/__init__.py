"""Storage: the replay backends (in memory; Redis shards with Lua scripts) and checkpoints on disk.

Built on the algorithm layer and the wire encoding; knows nothing of gRPC (see docs/architecture.md).
"""
