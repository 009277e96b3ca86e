"""`driftline demo`: the whole service on one machine, and the batch file example."""
