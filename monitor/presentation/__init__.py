"""Terminal and JSON rendering of check reports and evaluated windows."""
