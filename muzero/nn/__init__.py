"""Networks: representation, dynamics and prediction (MLP and board ResNet), categorical supports.

Pure algorithm layer (see docs/architecture.md).
"""
