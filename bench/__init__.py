"""`make bench`: the auction stack measured against bare baselines on the same machine, in one run."""
