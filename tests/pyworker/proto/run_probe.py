"""check_pyworker's probe of `fasterapi-pyworker --run FILE ARG...`."""
import sys

import _fasterapi

if sys.argv[1:] == ["exit3"]:
    sys.exit(3)
print(f"argv={sys.argv!r}")
print(f"dumps={_fasterapi.dumps({'a': [1]})!r}")
print(f"slot={_fasterapi.worker_info()['slot']}")
