"""fgrpo."""
