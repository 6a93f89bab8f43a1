"""Scoring an archive on more than one machine: `edgecrystal score --ray [ADDRESS]`
(`ray_score.score_paths_on_ray`). Needs the `ray` extra; nothing in the runtime or the daemon
imports this package."""
