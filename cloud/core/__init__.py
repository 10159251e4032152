"""Settings, database and security primitives of the cloud service."""
