"""`python -m xcloudflow` runs the `xcf` CLI."""

from xcloudflow.cli.main import main

main()
