import sys

from studio_devstack.cli import main

sys.exit(main())
