"""Training runs: the loop and its checkpoints (trainer.py), the run folder (runfolder.py), the memory a run needs (memory.py), evaluation reports (report.py)."""
