"""The S3 protocol layer: HTTP in, engine calls, S3 XML out. Never touches a file."""
