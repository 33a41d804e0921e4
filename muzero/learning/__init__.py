"""Learning: segments, examples and batches, n-step targets, the unrolled loss and the one learner update.

Pure algorithm layer: no sockets, threads or files (see docs/architecture.md).
"""
