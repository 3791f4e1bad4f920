"""``python -m p2pstack.interop``: the test-plans transport-interop peer."""

import sys

from p2pstack.interop.peer import main

sys.exit(main())
