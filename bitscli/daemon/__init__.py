"""The background daemon: the loop and scheduler, the workers that move bytes, the journal, and its process."""
