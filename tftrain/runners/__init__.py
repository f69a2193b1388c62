"""Everything around the model: the loop, checkpoints, summaries, progress, eval, export."""
