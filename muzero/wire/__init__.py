"""Wire encoding: the modules generated from proto/muzero/v1 (v1/) and the codec between them and
numpy (tensors as raw bytes with dtype and shape, segments, training batches). Used by transport for
gRPC and by storage for the records it keeps in Redis; nothing here is ever unpickled.
"""
