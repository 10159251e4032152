"""Database operations, one module per resource. Functions take the session
first and everything else by keyword; they raise `kapok.cloud.errors`, never
HTTP exceptions, and never commit (the caller owns the transaction)."""
