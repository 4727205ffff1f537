"""`python -m xcloudflow.provider` starts the Terraform plugin (Terraform runs it, not people)."""

from xcloudflow.provider.plugin import main

main()
