"""Constants of the file formats XCloudFlow reads (shared by the state and inventory domains)."""

# Pulumi marks a secret value as an object carrying this key (its public "signature").
PULUMI_SECRET_SIG = "4dabf18193072939515e22adb298388d"  # noqa: S105 - a format marker, not a secret
