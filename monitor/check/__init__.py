"""`driftline check`: the batch drift report of a current file against a reference file."""
