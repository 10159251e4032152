"""The `kapok` command line."""
