"""streamseg's kernels for TensorRT: the Triton MultiLevelRoIAlign kernel (``roialign_triton``)."""
