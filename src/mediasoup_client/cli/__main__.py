"""``python -m mediasoup_client.cli``: the ``mediasoup-client`` command."""

import sys

from .main import main

sys.exit(main())
