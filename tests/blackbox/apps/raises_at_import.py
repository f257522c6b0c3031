"""An app that raises while it is imported."""
from fasterapi import App

app = App()

raise ValueError("raised while importing raises_at_import")
