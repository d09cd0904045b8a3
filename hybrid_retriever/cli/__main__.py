"""``python -m hybrid_retriever.cli``: the same as the ``hybrid-retriever`` command."""

import sys

from hybrid_retriever.cli import main

sys.exit(main())
