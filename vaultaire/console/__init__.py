"""The web console: browse, upload, share, set up buckets and see usage, served by the daemon.

Pages are rendered on the server (twisted.web.template, which escapes by construction);
every action is an S3 request signed with the signed-in user's own keys and sent to the
daemon's own S3 endpoint, so the console can never do more than that user may.
"""
