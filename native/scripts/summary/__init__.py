"""summarise_gpu.py's parts (summarise_gpu.py is the entry point)."""
