import sys

from freight.cli.entry import main

sys.exit(main())
