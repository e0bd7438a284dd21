"""Access control: who asks (request.py), what policies and ACLs say, and the one decision (decide.py).

Sits below vaultaire/api (the S3 layer imports it); it never imports the api, the engine or drivers.
"""
