import sys

from fluxkit.cli import main

sys.exit(main())
