raise ImportError("dask_jobqueue is not in the GPU image (hidden by the CPU rehearsal of a GPU call)")
