"""A stand-in for the fasterapi package, for check_pyworker's protocol tests.

The worker puts the app dir first on sys.path, so with --app-dir
tests/pyworker/proto this package shadows the real one: the tests of the C
side then depend only on pyworker/PROTOCOL.md, not on the package's state.
"""
