"""This machine: its free cores (threads.py), its free memory (memory.py), and how fast training runs on it (speed.py)."""
