"""`edgecrystal bench`: latency reports shaped like trtexec's performance summary."""
