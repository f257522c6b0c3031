"""An app that does not parse: the server must stop at start-up."""
from fasterapi import App

app = App()

def broken(:
    return 1
