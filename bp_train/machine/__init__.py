"""This machine: its free cores (threads.py) and its free memory (memory.py); how fast training runs on it is measured by training/speed.py."""
