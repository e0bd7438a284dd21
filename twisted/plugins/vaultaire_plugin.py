"""`twistd vaultaire`: names the module that builds the service, imports nothing heavy."""

from twisted.application.service import ServiceMaker

vaultaire = ServiceMaker(
    "Vaultaire",
    "vaultaire.tap",
    "An S3-compatible object storage daemon.",
    "vaultaire",
)
