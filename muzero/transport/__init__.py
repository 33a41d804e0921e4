"""Transport: gRPC servers and clients of the replay and checkpoint services, retries and health,
weight following, batch prefetch and priority pushing (see docs/architecture.md).
"""
