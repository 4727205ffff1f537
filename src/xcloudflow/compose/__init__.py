"""The control plane: a Git monorepo of compositions planned, checked and applied as ChangeSets."""
