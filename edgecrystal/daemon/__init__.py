"""`edgecrystal serve`: the on-imager daemon (config, folder watcher, sd_notify, main loop)."""
