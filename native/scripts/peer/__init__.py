"""hf_peer.py's parts, one phase per module (hf_peer.py is the entry point)."""
