"""What a study shows: the leaderboard, plots, experiment tracking, the live progress."""
