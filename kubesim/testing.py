"""pytest fixtures that start kubesim clusters (filled in with the emulator)."""
