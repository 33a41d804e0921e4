"""Acting: self-play, reanalyze and evaluation, built from envs, nn, search and learning.

Pure algorithm layer: no sockets, threads or files (see docs/architecture.md).
"""
