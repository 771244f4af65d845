raise ImportError("itables is not in the GPU image (hidden by the CPU rehearsal of a GPU call)")
