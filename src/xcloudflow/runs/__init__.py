"""Runs (the seed's tasks): plan -> confirm -> apply of a workspace, executed as jobs by agents."""
